"""Subcommands of ``anygpt`` beyond Lightning's fit/validate/test/predict.

Each entry names a plain typed function (or a dict of them, for nested subcommands) that jsonargparse turns into a
command-line interface, or (`ArgvCommand`) a function that parses its own arguments, for a command whose choices are
open (``anygpt benchmark``: its tasks come from a registry plugins add to). Adding a command means adding a line here;
the parser in `anygpt.cli` never changes. Plugins extend what the commands act on (modalities, benchmark tasks), not
the list of commands.
"""

from __future__ import annotations

from dataclasses import dataclass

from anygpt.resolve import resolve as resolve_name


@dataclass(frozen=True)
class ArgvCommand:
    """A command whose function (``module:attribute``) takes the argument list and parses it itself."""

    target: str


# name -> (import path "module:attribute" of a function or of a {subcommand: import path} table, or such a table
# itself, or an ArgvCommand; one-line help). Nothing is imported until the command runs.
Target = str | dict[str, str] | ArgvCommand
BUILTIN_COMMANDS: dict[str, tuple[Target, str]] = {
    "prepare": ("anygpt.data.prepare:prepare", "Tokenize raw datasets into webdataset token shards"),
    "chat": ("anygpt.generation.chat:chat", "Talk to a model: text, image, speech and music in and out"),
    "generate": ("anygpt.generation.chat:generate", "One prompt -> one reply (files + HTML transcript)"),
    "convert": ({"hf-to-anygpt": "anygpt.checkpoints:hf_to_anygpt",
                 "ckpt-to-anygpt": "anygpt.checkpoints:ckpt_to_anygpt"},
                "Import released HF AnyGPT folders, export trained checkpoints"),
    "data": ({"demo": "anygpt.data.demo:demo", "tiny": "anygpt.data.tiny:tiny"},
             "Build the bundled demo corpus (anygpt data demo --out DIR) or the tiny one (anygpt data tiny)"),
    "benchmark": (ArgvCommand("benchmarks.tasks.cli:main"),
                  "Score a checkpoint on a benchmark task, built-in or a plugin's (results.json, report.html)"),
    "serve": ("anygpt.serve:serve", "A web page (and HTTP API) to talk to a model in every modality"),
    "download": ("anygpt.hub:download", "Fetch the released AnyGPT (download release --to DIR) or a hub id"),
}


def registered_commands() -> dict[str, tuple[Target, str]]:
    return dict(BUILTIN_COMMANDS)


def resolve(target: Target):
    """Import a command target: a function, or a dict (or the import path of a dict) of subcommand -> function."""
    if isinstance(target, str):
        target = resolve_name(target)
    if isinstance(target, dict):
        return {name: resolve(path) for name, path in target.items()}
    return target
