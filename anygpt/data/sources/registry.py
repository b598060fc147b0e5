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

from anygpt.data.sources.raw import RawSource
from anygpt.plugins import Registry

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


SOURCES = Registry(ENTRY_POINT_GROUP, "source", BUILTIN_SOURCES, SourceRegistryError, "its entry point and its class")
available = SOURCES.available


def load_source(name: str) -> type[RawSource]:
    """The source class registered as ``name``, imported now and checked: a `RawSource` subclass whose class name is
    the registered name (configs write it as ``class_path``)."""
    entry, cls = SOURCES.load(name, "source")
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
