"""A LibriSpeech tree: ``split/speaker/chapter/*.flac`` + ``*.trans.txt``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from anygpt.data.sources.base import DatasetError, RawItem, SkipReport, bad_record, find_audio, require_dir
from anygpt.data.sources.speech import SpeechSource, Utterance, load_sidecar


def read_librispeech(root: Path, split: str | Sequence[str], report: SkipReport | None = None,
                     with_alignment: bool = True) -> Iterator[Utterance]:
    """Utterances of ``root/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (+ the audio beside it).

    ``root`` is the folder holding the split folders (e.g. ``LibriSpeech/``); ``split`` e.g. "test-clean".
    Speakers, chapters and lines are visited in sorted order, one chapter at a time.
    """
    root = require_dir(Path(root), "LibriSpeech root")
    for name in [split] if isinstance(split, str) else list(split):
        split_dir = root / name
        if not split_dir.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DatasetError(f"LibriSpeech split folder not found: {split_dir} (found: {', '.join(found) or 'none'})")
        n_trans = 0
        for trans in sorted(split_dir.glob("*/*/*.trans.txt")):
            n_trans += 1
            speaker, chapter = trans.parent.parent.name, trans.parent.name
            sidecar = trans.with_name(trans.name.replace(".trans.txt", ".alignment.json"))
            alignment = load_sidecar(sidecar, report) if with_alignment else None
            with open(trans, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    utt_id, _, text = line.partition(" ")
                    where = f"{trans}:{line_no}"
                    if not text.strip():
                        bad_record(report, where, f"line has no transcript after the utterance id {utt_id!r}")
                        continue
                    audio = find_audio(trans.parent / utt_id)
                    if audio is None:
                        bad_record(report, where,
                                   f"transcript without audio: no {utt_id}.flac (or .wav) in {trans.parent}")
                        continue
                    yield Utterance(utt_id, speaker, audio, text.strip(), chapter, name,
                                    alignment.get(utt_id) if alignment else None)
        if n_trans == 0:
            raise DatasetError(f"no <speaker>/<chapter>/*.trans.txt files under {split_dir}: not a LibriSpeech split")


class LibriSpeech(SpeechSource):
    """A LibriSpeech tree: ``split/speaker/chapter/*.flac`` + ``*.trans.txt``."""

    name = "librispeech"

    def __init__(self, root: str, split: str | list[str] = "train-clean-100", lowercase: bool = True,
                 all_levels: bool = False) -> None:
        self.root, self.split, self.lowercase, self.all_levels = root, split, lowercase, all_levels

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for utt in read_librispeech(Path(self.root), self.split, report=report, with_alignment=False):
            yield self._item(utt.utt_id, utt.text, str(utt.path))
