"""JourneyDB annotations + extracted images (text-to-image data of the paper's mix)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import (
    OutsideRootError,
    RawItem,
    SkipReport,
    bad_record,
    iter_jsonl,
    require_dir,
    require_file,
    resolve_inside,
    sample_key,
)
from anygpt.data.sources.coco import CaptionedImage
from anygpt.data.sources.raw import RawSource


def read_journeydb(json_path: Path, image_dir: Path | None = None, text: str = "caption",
                   report: SkipReport | None = None, allow_outside_root: bool = False) -> Iterator[CaptionedImage]:
    """JourneyDB annotations (``train_anno_realease_repath.jsonl``: ``img_path`` like ``./000/abc.jpg``, ``prompt``,
    ``Task2.Caption``) with the images extracted from ``imgs/000.tgz`` ... into ``image_dir`` (default ``imgs/``
    beside the json). ``text``: ``caption`` (the GPT-3.5 caption, what the release's JourneyDB text looks like) or
    ``prompt`` (the Midjourney prompt)."""
    if text not in ("caption", "prompt"):
        raise ValueError(f"text must be 'caption' or 'prompt', got {text!r}")
    json_path = require_file(Path(json_path), "JourneyDB annotations")
    image_dir = require_dir(Path(image_dir) if image_dir is not None else json_path.parent / "imgs",
                             "JourneyDB image folder")
    for k, (where, row) in enumerate(iter_jsonl(json_path, report)):
        try:
            ref = str(row["img_path"])
            value = row["Task2"]["Caption"] if text == "caption" else row["prompt"]
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"empty {text}")
            path = resolve_inside(image_dir, ref, allow_outside_root)
        except OutsideRootError as e:
            bad_record(report, where, str(e))
            continue
        except (KeyError, TypeError, ValueError) as e:
            field_name = "Task2.Caption" if text == "caption" else "prompt"
            bad_record(report, where, f"malformed row ({type(e).__name__}: {e}); needs img_path and {field_name}")
            continue
        if not os.path.isfile(path):
            bad_record(report, where, f"image not found: {path} (extract its imgs/NNN.tgz archive into {image_dir})")
            continue
        yield CaptionedImage(k, path, "train", [value.strip()], None, {"img_path": ref})




class JourneyDB(RawSource):
    """JourneyDB annotations + extracted images (text-to-image data of the paper's mix)."""

    name = "journeydb"

    def __init__(self, json_path: str, image_dir: str | None = None, text: str = "caption") -> None:
        self.json_path, self.image_dir, self.text = json_path, image_dir, text

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for rec in read_journeydb(Path(self.json_path), self.image_dir and Path(self.image_dir), self.text,
                                          report=report, allow_outside_root=self.allow_outside_root):
            ref = rec.meta["img_path"]
            sample = ShardSample("pair", text=rec.captions[0], source=self.name, id=ref)
            folder, name = os.path.split(os.path.normpath(ref))
            yield RawItem(sample_key(self.name, os.path.basename(folder), os.path.splitext(name)[0]), sample,
                          {"image0": ("image", str(rec.path))})
