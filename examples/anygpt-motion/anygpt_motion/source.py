"""``MotionPairs``: a raw source for ``anygpt prepare``, the (clip, caption) rows of ``motion/{split}.jsonl`` (the
benchmark's layout, `anygpt_motion.task`) as pairs. Registered under ``anygpt.sources`` as its class name, so a
prepare config says ``class_path: MotionPairs``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import OutsideRootError, RawItem, SkipReport, resolve_inside, sample_key
from anygpt.data.sources.raw import RawSource


class MotionPairs(RawSource):
    """Rows ``{"key", "motion": "clips/c0.npy", "caption"}``; clip paths are relative to ``root`` (default: the folder
    above the jsonl's) and must stay inside it."""

    name = "motion_pairs"

    def __init__(self, path: str, root: str | None = None) -> None:
        self.path = Path(path)
        self.root = Path(root) if root is not None else self.path.parent.parent

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{self.path}:{number}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                clip = resolve_inside(self.root, row["motion"], self.allow_outside_root)
                key, caption = str(row["key"]), str(row["caption"])
            except OutsideRootError as err:
                report.add(where, str(err))
                continue
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                report.add(where, f"expected {{key, motion, caption}} ({err})")
                continue
            sample = ShardSample("pair", text=caption, source=self.name, id=key)
            yield RawItem(sample_key(self.name, key), sample, {"motion0": ("motion", clip)})
