"""Every raw source ``anygpt prepare`` can read: the built-in ones and those plugins register.

A source is named by its class name, which is what a prepare config writes as ``class_path`` (``class_path:
CocoKarpathy``; the dotted path works too). A plugin package registers its `RawSource` subclass under the
``anygpt.sources`` entry-point group, the entry point's name being the class's name::

    [project.entry-points."anygpt.sources"]
    MotionClips = "motion_plugin.sources:MotionClips"

``anygpt prepare`` imports the registered plugin sources before it reads its config (`load_plugins`), so their short
names resolve; listing sources reads names only. A plugin that fails to import, names something that is not a
`RawSource`, or takes a name that is already taken is refused with a message naming its entry point (and, for a clash,
both claimants); it never shadows a built-in source.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from anygpt.data.sources.raw import RawSource
from anygpt.resolve import resolve

ENTRY_POINT_GROUP = "anygpt.sources"

BUILTIN_SOURCES: dict[str, str] = {
    "CocoKarpathy": "anygpt.data.sources.coco:CocoKarpathy",
    "JourneyDB": "anygpt.data.sources.journeydb:JourneyDB",
    "ImageTextTars": "anygpt.data.sources.image_text:ImageTextTars",
    "MMC4": "anygpt.data.sources.mmc4:MMC4",
    "LibriSpeech": "anygpt.data.sources.librispeech:LibriSpeech",
    "MLS": "anygpt.data.sources.mls:MLS",
    "CommonVoice": "anygpt.data.sources.common_voice:CommonVoice",
    "GigaSpeech": "anygpt.data.sources.gigaspeech:GigaSpeech",
    "VCTK": "anygpt.data.sources.vctk:VCTK",
    "MusicCaps": "anygpt.data.sources.musiccaps:MusicCaps",
    "AudioCaptionCsv": "anygpt.data.sources.audio_csv:AudioCaptionCsv",
    "AnyInstruct": "anygpt.data.sources.anyinstruct:AnyInstruct",
    "ReleasePairs": "anygpt.data.sources.release:ReleasePairs",
    "ReleaseConversations": "anygpt.data.sources.release:ReleaseConversations",
    "ReleaseDocuments": "anygpt.data.sources.release:ReleaseDocuments",
}


class SourceRegistryError(ValueError):
    """A source name that no source has, a plugin source that cannot be used, or two sources claiming one name."""


@dataclass(frozen=True)
class SourceEntry:
    """Where a source comes from: ``target`` is its ``module:Class``; ``plugin`` the entry point's distribution (None
    for a built-in source)."""

    name: str
    target: str
    plugin: str | None = None

    @property
    def origin(self) -> str:
        if self.plugin is None:
            return f"the built-in source {self.name!r} ({self.target})"
        return f"the {ENTRY_POINT_GROUP} entry point {self.name} = {self.target!r} of {self.plugin}"


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"the package {dist.metadata['Name']}" if dist is not None else "an installed package"


def available() -> dict[str, SourceEntry]:
    """name -> where the source comes from, built-in sources first; nothing is imported. A plugin claiming a taken
    name raises `SourceRegistryError` naming both."""
    sources = {name: SourceEntry(name, target) for name, target in BUILTIN_SOURCES.items()}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        entry = SourceEntry(ep.name, ep.value, _distribution(ep))
        if ep.name in sources:
            if sources[ep.name] == entry:  # the same distribution seen twice on sys.path
                continue
            raise SourceRegistryError(f"source name clash: {entry.origin} claims {ep.name!r}, already taken by "
                                      f"{sources[ep.name].origin}; rename the plugin's source (its entry point and "
                                      "its class)")
        sources[ep.name] = entry
    return sources


def load_source(name: str) -> type[RawSource]:
    """The source class registered as ``name``, imported now and checked: a `RawSource` subclass whose class name is
    the registered name (configs write it as ``class_path``)."""
    sources = available()
    if name not in sources:
        raise SourceRegistryError(f"unknown source {name!r}; known sources: {', '.join(sources)} (plugins add theirs "
                                  f"under the {ENTRY_POINT_GROUP!r} entry-point group)")
    entry = sources[name]
    try:
        cls = resolve(entry.target)
    except Exception as err:  # a plugin's import can fail any way its code does: name the plugin, not a traceback
        cause = err.__cause__ or err
        raise SourceRegistryError(f"{entry.origin} could not be loaded: {type(cause).__name__}: {cause}") from None
    if not (isinstance(cls, type) and issubclass(cls, RawSource)):
        raise SourceRegistryError(f"{entry.origin} names {cls!r}, not a subclass of "
                                  "anygpt.data.sources.raw.RawSource")
    if cls.__name__ != name:
        raise SourceRegistryError(f"{entry.origin} names the class {cls.__qualname__}: the entry point's name must be "
                                  "the class's name, since a prepare config names the source by it (class_path)")
    return cls


def load_plugins() -> list[type[RawSource]]:
    """Import every plugin source (checked as `load_source` does), so that configs can name them by class name."""
    return [load_source(name) for name, entry in available().items() if entry.plugin is not None]


def describe() -> str:
    """The sources a prepare config can name (as ``class_path``), for ``anygpt prepare --help``."""
    entries = available()
    plugins = [f"{e.name} ({e.target} of {e.plugin.removeprefix('the package ')})" for e in entries.values()
               if e.plugin is not None]
    return (f"Sources (class_path of each entry of sources): built-in "
            f"{', '.join(n for n, e in entries.items() if e.plugin is None)}; plugins ({ENTRY_POINT_GROUP} entry "
            f"points): {', '.join(plugins) or 'none installed'}.")
