"""GigaSpeech: ``GigaSpeech.json`` + the long ``.opus`` recordings, segments cut out when loaded."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anygpt.data.sources.base import (
    AudioSegment,
    DatasetError,
    OutsideRootError,
    RawItem,
    SkipReport,
    bad_record,
    require_file,
    resolve_inside,
)
from anygpt.data.sources.speech import SpeechSource

GIGASPEECH_PUNCTUATION = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
GIGASPEECH_GARBAGE = ("<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>")


@dataclass
class SegmentUtterance:
    utt_id: str
    speaker: str
    audio: AudioSegment
    text: str
    subsets: list[str] = field(default_factory=list)


def gigaspeech_text(text_tn: str) -> str:
    """GigaSpeech's normalized transcript with its punctuation tags turned into punctuation."""
    for tag, mark in GIGASPEECH_PUNCTUATION.items():
        text_tn = text_tn.replace(f" {tag}", mark).replace(tag, mark)
    return " ".join(text_tn.split())


def iter_json_array(path: Path, key: str, chunk_chars: int = 1 << 20) -> Iterator[tuple[int, int, object]]:
    """(index, line, element) of the array ``key`` of a top-level json object, parsed one element at a time so a
    multi-gigabyte file (GigaSpeech.json) never sits in memory. ``line`` is where the element starts."""
    decoder = json.JSONDecoder()
    opening = re.compile(r'"' + re.escape(key) + r'"\s*:\s*\[')
    with open(path, encoding="utf-8") as f:
        buffer, line, found = "", 1, None
        while found is None:
            more = f.read(chunk_chars)
            if not more:
                raise DatasetError(f"{path}: no \"{key}\": [...] array found; is this the dataset's metadata file?")
            buffer += more
            found = opening.search(buffer)
        line += buffer.count("\n", 0, found.end())
        buffer, index = buffer[found.end():], 0
        while True:
            stripped = buffer.lstrip(" \t\r\n,")
            line += buffer.count("\n", 0, len(buffer) - len(stripped))
            buffer = stripped
            if buffer.startswith("]"):
                return
            try:
                element, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError as e:
                more = f.read(chunk_chars)
                if not more:
                    raise DatasetError(f"{path}:{line}: {key}[{index}] is not valid json ({e})") from None
                buffer += more
                continue
            yield index, line, element
            line += buffer.count("\n", 0, end)
            buffer, index = buffer[end:], index + 1


def read_gigaspeech(json_path: Path, subsets: str | Sequence[str] = "XL", report: SkipReport | None = None,
                    allow_outside_root: bool = False) -> Iterator[SegmentUtterance]:
    """GigaSpeech: ``GigaSpeech.json`` (``audios[]``: ``aid``, ``path`` of the long ``.opus`` recording relative to
    the json's folder, ``segments[]``: ``sid``, ``begin_time``, ``end_time``, ``text_tn``, ``subsets`` such as
    ``{XL}``). Segments of the wanted ``subsets`` (``XS``/``S``/``M``/``L``/``XL``/``DEV``/``TEST``) become utterances
    cut from their recording; garbage-tag segments (``<SIL>``, ``<MUSIC>``, ...) are reported and skipped, as the
    corpus's authors recommend."""
    json_path = require_file(Path(json_path), "GigaSpeech metadata")
    wanted = {f"{{{s.strip('{}')}}}" for s in ([subsets] if isinstance(subsets, str) else subsets)}
    for index, line, audio in iter_json_array(json_path, "audios"):
        where = f"{json_path}:{line} (audios[{index}])"
        try:
            aid, segments = str(audio["aid"]), list(audio["segments"])
            path = resolve_inside(json_path.parent, audio["path"], allow_outside_root)
        except OutsideRootError as e:
            bad_record(report, where, str(e))
            continue
        except (KeyError, TypeError) as e:
            bad_record(report, where, f"malformed audio entry ({type(e).__name__}: {e}); needs aid, path, segments")
            continue
        mine = [s for s in segments if isinstance(s, dict) and wanted & set(s.get("subsets") or ())]
        if not mine:
            continue
        if not os.path.isfile(path):
            bad_record(report, where, f"recording {path} not found ({len(mine)} segment(s) of {aid} skipped); download "
                                      "the audio or drop it from the metadata")
            continue
        for k, segment in enumerate(mine):
            seg_where = f"{where} segment {segment.get('sid', k)}"
            try:
                sid, text = str(segment["sid"]), str(segment["text_tn"]).strip()
                begin, end = float(segment["begin_time"]), float(segment["end_time"])
            except (KeyError, TypeError, ValueError) as e:
                bad_record(report, seg_where, f"malformed segment ({type(e).__name__}: {e}); needs sid, begin_time, "
                                              "end_time, text_tn")
                continue
            if text in GIGASPEECH_GARBAGE or not text:
                bad_record(report, seg_where, f"garbage utterance {text or '(empty)'}: no speech transcript, skipped")
                continue
            if end <= begin:
                bad_record(report, seg_where, f"end_time {end} is not after begin_time {begin}")
                continue
            yield SegmentUtterance(sid, aid, AudioSegment(path, begin, end), gigaspeech_text(text),
                                   sorted(segment.get("subsets") or ()))


class GigaSpeech(SpeechSource):
    """GigaSpeech: ``GigaSpeech.json`` + the long ``.opus`` recordings; each segment of the chosen subsets is cut out
    of its recording when loaded. ``subsets``: ``XS``, ``S``, ``M``, ``L``, ``XL`` (train), ``DEV``, ``TEST``."""

    name = "gigaspeech"

    def __init__(self, json_path: str, subsets: str | list[str] = "XL", lowercase: bool = True,
                 all_levels: bool = False) -> None:
        self.json_path, self.subsets, self.lowercase, self.all_levels = json_path, subsets, lowercase, all_levels

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for utt in read_gigaspeech(Path(self.json_path), self.subsets, report=report,
                                   allow_outside_root=self.allow_outside_root):
            yield self._item(utt.utt_id, utt.text, utt.audio)
