"""MusicCaps: the csv (``ytid``, ``caption``, ``aspect_list``, ``is_audioset_eval`` ...) + one audio file per row."""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import (
    DatasetError,
    OutsideRootError,
    RawItem,
    SkipReport,
    as_splits,
    bad_record,
    find_audio,
    require_dir,
    require_file,
    resolve_inside,
    sample_key,
)
from anygpt.data.sources.raw import RawSource


@dataclass
class MusicClip:
    ytid: str
    path: Path
    caption: str
    aspects: list[str]
    start_s: float
    end_s: float
    split: str | None = None
    extra: dict = field(default_factory=dict)  # other csv columns (the demo's synthesis parameters)


def read_musiccaps(csv_path: Path, audio_dir: Path | None = None, split: str | Sequence[str] | None = None,
                   report: SkipReport | None = None, check_files: bool = True,
                   allow_outside_root: bool = False) -> Iterator[MusicClip]:
    """Rows of a MusicCaps-style csv (ytid, start_s, end_s, aspect_list, caption, ...) with audio
    ``<audio_dir>/<ytid>.*`` (default ``audio/`` beside the csv). Files hold the clip itself (start_s/end_s say
    where it came from).

    ``split`` filters on a ``split`` column, or for the original csv on ``is_audioset_eval`` ("test" = True).
    """
    csv_path = require_file(Path(csv_path), "MusicCaps csv")
    audio_dir = require_dir(Path(audio_dir) if audio_dir is not None else csv_path.parent / "audio", "MusicCaps audio")
    wanted = as_splits(split)
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"ytid", "caption"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{csv_path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}")
        for row in reader:
            where = f"{csv_path}:{reader.line_num}"
            try:
                audioset_eval = row.get("is_audioset_eval")
                row_split = row.get("split") or (
                    ("test" if audioset_eval.strip().lower() == "true" else "train") if audioset_eval else None)
                if wanted is not None and row_split not in wanted:
                    continue
                ytid, caption = row["ytid"].strip(), (row["caption"] or "").strip()
                if not ytid or not caption:
                    raise ValueError("empty ytid or caption")
                aspects = ast.literal_eval(row["aspect_list"]) if row.get("aspect_list") else []
                if not isinstance(aspects, list):
                    raise ValueError(f"aspect_list is not a list: {row['aspect_list']!r}")
                start, end = float(row.get("start_s") or 0), float(row.get("end_s") or 0)
            except (ValueError, SyntaxError, KeyError, AttributeError) as e:
                bad_record(report, where, f"malformed row ({e})")
                continue
            try:
                resolve_inside(audio_dir, ytid, allow_outside_root)
            except OutsideRootError as e:
                bad_record(report, where, f"ytid: {e}")
                continue
            if check_files:
                # common names of downloaded clips: YTID.wav, YTID_START.wav, YTID-START-END.wav
                names = (ytid, f"{ytid}_{int(start)}", f"{ytid}-{int(start)}-{int(end)}")
                audio = next((a for a in (find_audio(audio_dir / n) for n in names) if a is not None), None)
            else:
                audio = audio_dir / f"{ytid}.wav"
            if audio is None:
                bad_record(report, where, f"no audio file for ytid {ytid!r} in {audio_dir}")
                continue
            known = {"ytid", "caption", "aspect_list", "start_s", "end_s", "split"}
            yield MusicClip(ytid, audio, caption, [str(a) for a in aspects], start, end, row_split,
                            {k: v for k, v in row.items() if k not in known})


class MusicCaps(RawSource):
    """A MusicCaps-style csv with one audio file per row."""

    name = "musiccaps"

    def __init__(self, csv_path: str, audio_dir: str | None = None, split: str | list[str] | None = "train") -> None:
        self.csv_path, self.audio_dir, self.split = csv_path, audio_dir, split

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for clip in read_musiccaps(Path(self.csv_path), self.audio_dir and Path(self.audio_dir), self.split,
                                   report=report, allow_outside_root=self.allow_outside_root):
            sample = ShardSample("pair", text=clip.caption, source=self.name, id=clip.ytid)
            yield RawItem(sample_key(self.name, clip.ytid), sample, {"music0": ("music", str(clip.path))})
