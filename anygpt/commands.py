"""Subcommands of ``anygpt`` beyond Lightning's fit/validate/test/predict.

Each entry names a plain typed function (or a dict of them, for nested subcommands) that jsonargparse turns into a
command-line interface. Adding a command means adding a line here, or exposing a function under the ``anygpt.commands``
entry-point group from another package; the parser in `anygpt.cli` never changes.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from anygpt.resolve import resolve as resolve_name

ENTRY_POINT_GROUP = "anygpt.commands"

# name -> (import path "module:attribute" of a function or of a {subcommand: import path} table, or such a table
# itself; one-line help). Nothing is imported until the command runs.
Target = str | dict[str, str]
BUILTIN_COMMANDS: dict[str, tuple[Target, str]] = {
    "prepare": ("anygpt.data.prepare:prepare", "Tokenize raw datasets into webdataset token shards"),
    "chat": ("anygpt.generation.chat:chat", "Talk to a model: text, image, speech and music in and out"),
    "generate": ("anygpt.generation.chat:generate", "One prompt -> one reply (files + HTML transcript)"),
    "convert": ({"hf-to-anygpt": "anygpt.checkpoints:hf_to_anygpt",
                 "ckpt-to-anygpt": "anygpt.checkpoints:ckpt_to_anygpt"},
                "Import released HF AnyGPT folders, export trained checkpoints"),
    "data": ({"demo": "anygpt.data.demo:demo", "tiny": "anygpt.data.tiny:tiny"},
             "Build the bundled demo corpus (anygpt data demo --out DIR) or the tiny one (anygpt data tiny)"),
    "benchmark": ("benchmarks.tasks:TASKS", "Score a checkpoint on the paper's benchmarks (results.json, report.html)"),
    "serve": ("anygpt.serve:serve", "A web page (and HTTP API) to talk to a model in every modality"),
    "download": ("anygpt.hub:download", "Fetch the released AnyGPT (download release --to DIR) or a hub id"),
}


def registered_commands() -> dict[str, tuple[Target, str]]:
    commands = dict(BUILTIN_COMMANDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        commands.setdefault(ep.name, (ep.value, f"(plugin) {ep.value}"))
    return commands


def resolve(target: Target):
    """Import a command target: a function, or a dict (or the import path of a dict) of subcommand -> function."""
    if isinstance(target, str):
        target = resolve_name(target)
    if isinstance(target, dict):
        return {name: resolve(path) for name, path in target.items()}
    return target
