"""What the utterance sources (LibriSpeech, MLS, Common Voice, GigaSpeech, VCTK) share: the record and the item."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import MediaSource, RawItem, SkipReport, bad_record, sample_key
from anygpt.data.sources.raw import RawSource


@dataclass
class Utterance:
    utt_id: str
    speaker: str
    path: Path | str  # str from the readers of the large corpora (MLS, Common Voice): see `resolve_inside`
    text: str
    chapter: str | None = None
    split: str | None = None
    alignment: dict | None = None  # demo corpus sidecar: phonemes/words with start times (seconds)


def load_sidecar(path: Path, report: SkipReport | None) -> dict | None:
    """An alignment sidecar (json) if there is one; a broken one is a bad record."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        bad_record(report, str(path), f"alignment sidecar is not valid json ({e})")
        return None


class SpeechSource(RawSource):
    """Utterance sources: ``all_levels`` keeps every RVQ level of the speech tokenizer (SoundStorm's training data;
    the LLM still reads level 1 of them)."""

    lowercase: bool
    all_levels: bool

    def _item(self, utt_id: str, text: str, audio: MediaSource) -> RawItem:
        sample = ShardSample("pair", text=text.lower() if self.lowercase else text, source=self.name, id=utt_id,
                             all_levels=["speech0"] if self.all_levels else [])
        return RawItem(sample_key(self.name, utt_id), sample, {"speech0": ("speech", audio)})
