"""Common Voice: ``<split>.tsv`` + ``clips/`` of one language folder."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from anygpt.data.sources.base import (
    DatasetError,
    OutsideRootError,
    RawItem,
    SkipReport,
    bad_record,
    require_dir,
    require_file,
    resolve_inside,
)
from anygpt.data.sources.speech import SpeechSource, Utterance


def read_common_voice(root: Path, split: str = "train", report: SkipReport | None = None,
                      allow_outside_root: bool = False) -> Iterator[Utterance]:
    """Common Voice: ``root/<split>.tsv`` (``client_id``, ``path``, ``sentence``, ... columns; the split is e.g.
    ``train``, ``dev``, ``test`` or ``validated``) with the clips in ``root/clips/`` (``root`` is the language
    folder, e.g. ``cv-corpus-17.0/en``). The speaker is the ``client_id``."""
    root = require_dir(Path(root), "Common Voice language folder")
    tsv = require_file(root / f"{split}.tsv", f"Common Voice split '{split}'")
    clips = require_dir(root / "clips", "Common Voice clips")
    with open(tsv, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"client_id", "path", "sentence"} - set(rows.fieldnames or [])
        if missing:
            raise DatasetError(f"{tsv}: missing column(s) {sorted(missing)}; found {rows.fieldnames}. Is this a "
                               "Common Voice split file?")
        for row in rows:
            where = f"{tsv}:{rows.line_num}"
            clip, text = (row.get("path") or "").strip(), (row.get("sentence") or "").strip()
            if not clip or not text:
                bad_record(report, where, "empty path or sentence")
                continue
            try:
                audio = resolve_inside(clips, clip, allow_outside_root)
            except OutsideRootError as e:
                bad_record(report, where, str(e))
                continue
            if not os.path.isfile(audio):
                bad_record(report, where, f"clip not found: {audio}")
                continue
            utt_id = os.path.splitext(os.path.basename(clip))[0]
            yield Utterance(utt_id, (row.get("client_id") or "").strip(), audio, text, None, split)


class CommonVoice(SpeechSource):
    """Common Voice: ``<split>.tsv`` + ``clips/`` of one language folder."""

    name = "commonvoice"

    def __init__(self, root: str, split: str = "train", lowercase: bool = False, all_levels: bool = False) -> None:
        self.root, self.split, self.lowercase, self.all_levels = root, split, lowercase, all_levels

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for utt in read_common_voice(Path(self.root), self.split, report=report,
                                     allow_outside_root=self.allow_outside_root):
            yield self._item(utt.utt_id, utt.text, str(utt.path))
