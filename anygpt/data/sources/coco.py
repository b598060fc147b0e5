"""COCO with the Karpathy split (``dataset_coco.json`` + images): image-caption pairs."""

from __future__ import annotations

import json
import os
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
    require_dir,
    require_file,
    resolve_inside,
)
from anygpt.data.sources.raw import RawSource


@dataclass
class CaptionedImage:
    image_id: int  # Karpathy "imgid" (or "cocoid" when imgid is absent)
    path: Path | str  # str from the JourneyDB reader (millions of files): see `resolve_inside`
    split: str
    captions: list[str]
    cocoid: int | None = None
    meta: dict = field(default_factory=dict)  # any extra keys of the entry (the demo's "scene")


def read_coco_karpathy(json_path: Path, image_root: Path | None = None, split: str | Sequence[str] | None = None,
                       report: SkipReport | None = None, check_files: bool = True, allow_outside_root: bool = False,
                       images_only: bool = False) -> Iterator[CaptionedImage]:
    """Images of a Karpathy-split json (``dataset_coco.json``); path = image_root / filepath / filename.

    ``image_root`` defaults to the json's folder; ``split`` filters ("train", "val", "test", "restval").
    The json is one object, so it is parsed once; records are produced lazily from it. ``images_only``: the relaxed
    mode of an image tokenizer's list, whose entries may lack captions, a split ("train") and an id (their index);
    root containment and the split filter are the same.
    """
    json_path = require_file(Path(json_path), "Karpathy split json")
    root = Path(image_root) if image_root is not None else json_path.parent
    require_dir(root, "COCO image root")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{json_path}: not valid json ({e})") from e
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"{json_path}: expected an object with an 'images' list (Karpathy dataset_coco.json)")
    wanted = as_splits(split)
    known = {"filepath", "filename", "imgid", "split", "sentences", "sentids", "cocoid"}
    for k, entry in enumerate(entries):
        where = f"{json_path}:images[{k}]"
        try:
            entry_split = entry.get("split", "train") if images_only else entry["split"]
            if wanted is not None and entry_split not in wanted:
                continue
            sentences = entry.get("sentences", []) if images_only else entry["sentences"]
            captions = [s["raw"].strip() for s in sentences]
            path = Path(resolve_inside(root, os.path.join(entry.get("filepath", ""), entry["filename"]),
                                       allow_outside_root))
            ids = [entry[n] for n in ("imgid", "cocoid") if n in entry] or ([k] if images_only else [entry["imgid"]])
            image_id = int(ids[0])
        except OutsideRootError as e:
            bad_record(report, where, str(e))
            continue
        except (KeyError, TypeError, ValueError) as e:
            bad_record(report, where,
                       f"malformed entry ({type(e).__name__}: {e}); needs split, filename, sentences[].raw")
            continue
        if not captions and not images_only:
            bad_record(report, where, "no captions")
            continue
        if check_files and not path.is_file():
            bad_record(report, where, f"image file not found: {path}")
            continue
        cocoid = entry.get("cocoid")
        yield CaptionedImage(image_id, path, entry_split, captions, int(cocoid) if cocoid is not None else None,
                             {k2: v for k2, v in entry.items() if k2 not in known})


class CocoKarpathy(RawSource):
    """COCO Karpathy json + images: one sample per image with all its captions (the template draws one)."""

    name = "coco"

    def __init__(self, json_path: str, image_root: str | None = None, split: str | list[str] = "train") -> None:
        self.json_path, self.image_root, self.split = json_path, image_root, split

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        for rec in read_coco_karpathy(Path(self.json_path), self.image_root and Path(self.image_root), self.split,
                                      report=report, allow_outside_root=self.allow_outside_root):
            sample = ShardSample("pair", text=rec.captions, source=self.name, id=rec.image_id)
            yield RawItem(f"{self.name}-{rec.image_id}", sample, {"image0": ("image", str(rec.path))})
