"""A VCTK tree: ``txt/pXXX/*.txt`` with ``wav48/pXXX/*.wav`` (0.80) or ``wav48_silence_trimmed`` (0.92)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from anygpt.data.sources.base import DatasetError, RawItem, SkipReport, bad_record, find_audio, require_dir
from anygpt.data.sources.speech import SpeechSource, Utterance, load_sidecar


def read_vctk(root: Path, speakers: Sequence[str] | None = None, report: SkipReport | None = None,
              mic: str = "mic1") -> Iterator[Utterance]:
    """Utterances of a VCTK tree: ``txt/<spk>/<spk>_<n>.txt`` with audio in ``wav48/<spk>/<spk>_<n>.wav``
    (VCTK 0.80) or ``wav48_silence_trimmed/<spk>/<spk>_<n>_<mic>.flac`` (VCTK 0.92). Audio is 48 kHz: resample."""
    root = require_dir(Path(root), "VCTK root")
    txt_root = require_dir(root / "txt", "VCTK transcript (txt/)")
    audio_roots = [d for d in (root / "wav48", root / "wav48_silence_trimmed") if d.is_dir()]
    if not audio_roots:
        raise DatasetError(f"VCTK audio folder not found: expected {root / 'wav48'} or "
                           f"{root / 'wav48_silence_trimmed'}")
    wanted = set(speakers) if speakers is not None else None
    alignments = root / "alignment"
    for spk_dir in sorted(p for p in txt_root.iterdir() if p.is_dir()):
        speaker = spk_dir.name
        if wanted is not None and speaker not in wanted:
            continue
        alignment = load_sidecar(alignments / f"{speaker}.json", report)
        for txt in sorted(spk_dir.glob("*.txt")):
            utt_id = txt.stem
            text = txt.read_text(encoding="utf-8", errors="replace").strip()
            if not text:
                bad_record(report, str(txt), "empty transcript")
                continue
            stems = [d / speaker / name for d in audio_roots for name in (utt_id, f"{utt_id}_{mic}")]
            audio = next((a for a in map(find_audio, stems) if a is not None), None)
            if audio is None:
                bad_record(report, str(txt),
                           f"transcript without audio: no {utt_id} audio under {', '.join(map(str, audio_roots))}")
                continue
            yield Utterance(utt_id, speaker, audio, text, None, None, alignment.get(utt_id) if alignment else None)


class VCTK(SpeechSource):
    """A VCTK-style tree (``wav48/pXXX/*.wav`` + ``txt/pXXX/*.txt``)."""

    name = "vctk"

    def __init__(self, root: str, lowercase: bool = False, all_levels: bool = False) -> None:
        self.root, self.lowercase, self.all_levels = root, lowercase, all_levels

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for utt in read_vctk(Path(self.root), report=report):
            yield self._item(utt.utt_id, utt.text, str(utt.path))
