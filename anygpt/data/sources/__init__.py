"""Raw datasets as the items ``anygpt prepare`` tokenizes: one module per layout of the paper's data mix, each with
its reader (streamed records) and its `RawSource`; `base` holds what they share (errors, root containment, the skip
report, media placeholders) and `raw` the chunking. `registry` lists the built-in sources and those plugins add under
the ``anygpt.sources`` entry-point group.

The source classes are importable from here, so a prepare config may say ``class_path: anygpt.data.sources.MLS`` (or
just ``class_path: MLS``, the registered name).
"""

from anygpt.data.sources.anyinstruct import AnyInstruct
from anygpt.data.sources.audio_csv import AudioCaptionCsv
from anygpt.data.sources.coco import CocoKarpathy
from anygpt.data.sources.common_voice import CommonVoice
from anygpt.data.sources.gigaspeech import GigaSpeech
from anygpt.data.sources.image_text import ImageTextTars
from anygpt.data.sources.journeydb import JourneyDB
from anygpt.data.sources.librispeech import LibriSpeech
from anygpt.data.sources.mls import MLS
from anygpt.data.sources.mmc4 import MMC4
from anygpt.data.sources.musiccaps import MusicCaps
from anygpt.data.sources.raw import RawSource
from anygpt.data.sources.release import ReleaseConversations, ReleaseDocuments, ReleasePairs
from anygpt.data.sources.vctk import VCTK

__all__ = ["MLS", "MMC4", "VCTK", "AnyInstruct", "AudioCaptionCsv", "CocoKarpathy", "CommonVoice", "GigaSpeech",
           "ImageTextTars", "JourneyDB", "LibriSpeech", "MusicCaps", "RawSource", "ReleaseConversations",
           "ReleaseDocuments", "ReleasePairs"]
