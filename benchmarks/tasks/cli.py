"""``anygpt benchmark``: list the tasks (built-in and plugins), or parse one task's options and run it.

    anygpt benchmark --help                       # every task, plugins marked with their package
    anygpt benchmark NAME --help                  # that task's options (its dataclass fields)
    anygpt benchmark NAME --ckpt CKPT [--OPTION VALUE ...]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from benchmarks.tasks.registry import ENTRY_POINT_GROUP, TaskRegistryError, available, load_task

PROG = "anygpt benchmark"


def usage() -> str:
    """The task list: names and origins, read without importing any task."""
    lines = [f"usage: {PROG} TASK --ckpt CKPT [options]   ({PROG} TASK --help for a task's options)", "",
             "Score a checkpoint on a benchmark task: results.json (with the command that reproduces it) and "
             "report.html.", "", "built-in tasks:"]
    tasks = available()
    lines += [f"  {name}" for name, entry in tasks.items() if entry.plugin is None]
    plugins = [entry for entry in tasks.values() if entry.plugin is not None]
    lines += ["", f"plugin tasks (entry-point group {ENTRY_POINT_GROUP!r}):"]
    lines += [f"  {e.name:<20} {e.target} ({e.plugin.removeprefix('the package ')})" for e in plugins] or ["  (none)"]
    return "\n".join(lines)


def parser_for(name: str) -> ArgumentParser:
    """The option parser of task ``name``: its dataclass fields, documented by its docstring's Args."""
    cls = load_task(name)
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else name
    parser = ArgumentParser(prog=f"{PROG} {name}", description=summary)
    parser.add_argument("--config", action=ActionConfigFile, help="options from a YAML file")
    parser.add_class_arguments(cls, as_group=False)
    return parser


def run(name: str, argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``argv`` as task ``name``'s options and run it; returns its results."""
    parser = parser_for(name)
    options = vars(parser.instantiate(parser.parse_args(list(argv))))  # option groups as dataclasses
    options.pop("config", None)
    return load_task(name)(**options).run()


def main(argv: Sequence[str]) -> dict[str, Any] | None:
    argv = list(argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(usage())
            return None
        return run(argv[0], argv[1:])
    except TaskRegistryError as err:  # a refusal is an answer, not a crash
        print(f"{PROG}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
