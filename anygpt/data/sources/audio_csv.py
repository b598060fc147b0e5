"""Any csv of (audio file, caption) rows."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import DatasetError, OutsideRootError, RawItem, SkipReport, resolve_inside
from anygpt.data.sources.raw import RawSource


class AudioCaptionCsv(RawSource):
    """Any csv of (audio file, caption) rows, e.g. a music-caption or speech-transcript list; audio paths are
    relative to ``audio_root`` (default: the csv's folder) and must stay inside it."""

    name = "audio_csv"

    def __init__(self, csv_path: str, modality: str = "music", audio_column: str = "audio",
                 text_column: str = "caption", audio_root: str | None = None,
                 all_levels: bool = False) -> None:
        self.csv_path, self.modality = Path(csv_path), modality
        self.audio_column, self.text_column = audio_column, text_column
        self.audio_root = Path(audio_root) if audio_root else self.csv_path.parent
        if all_levels and modality != "speech":
            raise ValueError("all_levels keeps every RVQ level of speech; it needs modality: speech")
        self.all_levels = all_levels

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        if not self.csv_path.is_file():
            raise DatasetError(f"audio-caption csv not found: {self.csv_path}")
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f)
            missing = {self.audio_column, self.text_column} - set(rows.fieldnames or [])
            if missing:
                raise DatasetError(f"{self.csv_path}: missing column(s) {sorted(missing)}; found "
                                           f"{rows.fieldnames}. Set audio_column/text_column.")
            for row in rows:
                where = f"{self.csv_path}:{rows.line_num}"
                audio, text = (row[self.audio_column] or "").strip(), (row[self.text_column] or "").strip()
                if not audio or not text:
                    report.add(where, "empty audio path or caption")
                    continue
                try:
                    path = resolve_inside(self.audio_root, audio, self.allow_outside_root)
                except OutsideRootError as err:
                    report.add(where, str(err))
                    continue
                if not os.path.isfile(path):
                    report.add(where, f"audio file not found: {path}")
                    continue
                sample = ShardSample("pair", text=text, source=self.name, id=audio,
                                     all_levels=[f"{self.modality}0"] if self.all_levels else [])
                yield RawItem(f"{self.name}-{rows.line_num}", sample, {f"{self.modality}0": (self.modality, str(path))})
