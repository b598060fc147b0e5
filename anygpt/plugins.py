"""Named classes of one kind (benchmark tasks, raw data sources): the built-in ones and those plugin packages register
under an entry-point group. One mechanism for every such registry, so every plugin point fails the same way.

Listing reads names only (nothing is imported). A plugin that fails to import, or takes a name that is already taken,
is refused with a message naming its entry point and its package (and, for a clash, both claimants); it never
shadows a built-in class. What a loaded class must be (a subclass, its name attribute) each registry checks itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from anygpt.resolve import resolve


@dataclass(frozen=True)
class Entry:
    """Where a registered class comes from: ``target`` is its ``module:Class``; ``plugin`` the package that registered
    it under ``group`` (None for a built-in one)."""

    name: str
    target: str
    kind: str
    group: str
    plugin: str | None = None

    @property
    def origin(self) -> str:
        if self.plugin is None:
            return f"the built-in {self.kind} {self.name!r} ({self.target})"
        return f"the {self.group} entry point {self.name} = {self.target!r} of {self.plugin}"


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"the package {dist.metadata['Name']}" if dist is not None else "an installed package"


@dataclass(frozen=True)
class Registry:
    """The ``kind``s (e.g. "task") known by name: ``builtins`` (name -> ``module:Class``) first, then the entry points
    of ``group``. Errors are raised as ``error`` (a `ValueError` subclass the registry's users catch);
    ``rename`` says what a plugin renames when its name clashes."""

    group: str
    kind: str
    builtins: dict[str, str]
    error: type[ValueError]
    rename: str

    def available(self) -> dict[str, Entry]:
        """name -> where it comes from, built-in ones first; nothing is imported."""
        known = {name: Entry(name, target, self.kind, self.group) for name, target in self.builtins.items()}
        for ep in sorted(entry_points(group=self.group), key=lambda e: (e.name, e.value)):
            entry = Entry(ep.name, ep.value, self.kind, self.group, _distribution(ep))
            if ep.name in known:
                if known[ep.name] == entry:  # the same distribution seen twice on sys.path
                    continue
                raise self.error(f"{self.kind} name clash: {entry.origin} claims {ep.name!r}, already taken by "
                                 f"{known[ep.name].origin}; rename the plugin's {self.kind} ({self.rename})")
            known[ep.name] = entry
        return known

    def load(self, name: str, unknown: str) -> tuple[Entry, Any]:
        """The entry registered as ``name`` and what it names, imported now (``unknown``: what an unknown name is
        called in the error, e.g. "benchmark task")."""
        known = self.available()
        if name not in known:
            raise self.error(f"unknown {unknown} {name!r}; known {self.kind}s: {', '.join(known)} (plugins add theirs "
                             f"under the {self.group!r} entry-point group)")
        entry = known[name]
        try:
            return entry, resolve(entry.target)
        except Exception as err:  # a plugin's import can fail any way its code does: name the plugin, not a traceback
            cause = err.__cause__ or err
            raise self.error(f"{entry.origin} could not be loaded: {type(cause).__name__}: {cause}") from None
