"""Multilingual LibriSpeech: ``split/transcripts.txt`` + ``split/audio/SPK/BOOK/*``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from anygpt.data.sources.base import RawItem, SkipReport, bad_record, find_audio, iter_lines, require_dir, require_file
from anygpt.data.sources.speech import SpeechSource, Utterance

MLS_ID = re.compile(r"^(\d+)_(\d+)_(\d+)$")


def read_mls(root: Path, split: str = "train", report: SkipReport | None = None) -> Iterator[Utterance]:
    """Multilingual LibriSpeech: ``root/<split>/transcripts.txt`` (``SPEAKER_BOOK_SEGMENT<tab>text`` per line) with
    audio ``root/<split>/audio/SPEAKER/BOOK/SPEAKER_BOOK_SEGMENT.flac`` (or ``.opus`` in the opus release)."""
    root = require_dir(Path(root), "MLS root")
    split_dir = require_dir(root / split, f"MLS split '{split}'")
    transcripts = require_file(split_dir / "transcripts.txt", "MLS transcripts")
    audio_root = os.path.join(split_dir, "audio")
    for where, line in iter_lines(transcripts):
        if not line.strip():
            continue
        utt_id, _, text = line.rstrip("\n").partition("\t")
        match = MLS_ID.match(utt_id.strip())
        if match is None:
            bad_record(report, where, f"{utt_id!r} is not an MLS utterance id (SPEAKER_BOOK_SEGMENT, digits)")
            continue
        if not text.strip():
            bad_record(report, where, "no transcript after the utterance id (expected a tab, then the text)")
            continue
        speaker, book, _ = match.groups()
        folder = os.path.join(audio_root, speaker, book)
        audio = find_audio(os.path.join(folder, utt_id.strip()))
        if audio is None:
            bad_record(report, where, f"transcript without audio: no {utt_id}.flac/.opus in {folder}")
            continue
        yield Utterance(utt_id.strip(), speaker, audio, text.strip(), book, split)


class MLS(SpeechSource):
    """Multilingual LibriSpeech (English in the paper): ``split/transcripts.txt`` + ``split/audio/SPK/BOOK/*``."""

    name = "mls"

    def __init__(self, root: str, split: str = "train", lowercase: bool = True, all_levels: bool = False) -> None:
        self.root, self.split, self.lowercase, self.all_levels = root, split, lowercase, all_levels

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for utt in read_mls(Path(self.root), self.split, report=report):
            yield self._item(utt.utt_id, utt.text, str(utt.path))
