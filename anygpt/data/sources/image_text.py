"""Image-text webdataset tars as img2dataset writes them (LAION-2B, LAION-COCO, CC)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.shards import ReaderStats, expand_shards, iter_raw
from anygpt.data.sources.base import RawItem, SkipReport, sample_key
from anygpt.data.sources.raw import LazyChunk, RawSource


class ImageTextTars(RawSource):
    """Image-text webdataset tars as img2dataset writes them (LAION-2B, LAION-COCO, CC): per sample ``KEY.jpg``
    (or ``.png``/``.webp``) with its caption in ``KEY.txt`` or in ``KEY.json``'s ``caption_key`` field.

    Each input tar becomes one chunk, read lazily in the worker, so billions of pairs never sit in memory.
    """

    name = "image_text"
    IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

    def __init__(self, tars: str | list[str], caption_key: str = "caption") -> None:
        self.tars, self.caption_key = tars, caption_key

    def chunks(self, chunk_size: int, report: SkipReport) -> list[Sequence[RawItem]]:
        return [LazyChunk(self, url) for url in expand_shards(self.tars)]

    def read_part(self, url: str, report: SkipReport) -> Iterator[RawItem]:
        stats = ReaderStats()
        for raw in iter_raw(url, stats):
            key = raw["__key__"]
            image = next((raw[e] for e in self.IMAGE_EXTENSIONS if e in raw), None)
            caption = raw.get("txt", b"").decode("utf-8", "replace").strip()
            if not caption and "json" in raw:
                try:
                    caption = str(json.loads(raw["json"]).get(self.caption_key) or "").strip()
                except (json.JSONDecodeError, AttributeError):
                    pass
            if image is None or not caption:
                missing = "image (.jpg/.png/.webp)" if image is None else f"caption (.txt or json {self.caption_key})"
                report.add(f"{url}:{key}", f"no {missing}; the sample is skipped (re-download it with img2dataset)")
                continue
            sample = ShardSample("pair", text=caption, source=self.name, id=key)
            yield RawItem(sample_key(self.name, Path(url).name.split(".")[0], key), sample,
                          {"image0": ("image", image)})
        for message in stats.messages:
            report.add(url, message)
