"""Subcommands of ``anygpt`` beyond Lightning's fit/validate/test/predict.

Each entry names a plain typed function (or a dict of them, for nested subcommands) that jsonargparse turns into a
command-line interface. Adding a command means adding a line here, or exposing a function under the ``anygpt.commands``
entry-point group from another package; the parser in `anygpt.cli` never changes.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "anygpt.commands"

# name -> (import path "module:attribute", one-line help)
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {}


def registered_commands() -> dict[str, tuple[str, str]]:
    commands = dict(BUILTIN_COMMANDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        commands.setdefault(ep.name, (ep.value, f"(plugin) {ep.value}"))
    return commands
