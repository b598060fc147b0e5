"""MMC4(-core) documents with their downloaded images: interleaved image-text documents."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import (
    MediaSource,
    OutsideRootError,
    RawItem,
    SkipReport,
    bad_record,
    expand_files,
    iter_jsonl,
    require_dir,
    require_file,
    resolve_inside,
    sample_key,
)
from anygpt.data.sources.raw import LazyChunk, RawSource


@dataclass
class InterleavedDocument:
    """An MMC4 document: its sentences and, per available image, the sentence it precedes."""

    id: str
    sentences: list[str]
    images: list[tuple[int, str]]  # (matched_text_index, image file), in document order
    url: str = ""


def read_mmc4(paths: Sequence[Path], image_dir: Path, report: SkipReport | None = None, min_images: int = 1,
              allow_outside_root: bool = False) -> Iterator[InterleavedDocument]:
    """MMC4 / MMC4-core documents (``docs_*.jsonl`` or ``.jsonl.zip``: ``text_list``, ``image_info[]`` with
    ``image_name`` and ``matched_text_index``, ``url``) with their images downloaded into ``image_dir`` under their
    ``image_name``. Images that were not downloaded are left out (listed in the report); a document with fewer than
    ``min_images`` images left is skipped."""
    image_dir = require_dir(Path(image_dir), "MMC4 image folder")
    for path in paths:
        path = require_file(Path(path), "MMC4 documents")
        stem = path.name.split(".")[0]
        for where, row in iter_jsonl(path, report):
            try:
                sentences = [str(t) for t in row["text_list"]]
                infos = sorted(row["image_info"], key=lambda i: int(i["matched_text_index"]))
                refs = [(int(i["matched_text_index"]), str(i["image_name"])) for i in infos]
            except (KeyError, TypeError, ValueError) as e:
                bad_record(report, where, f"malformed document ({type(e).__name__}: {e}); needs text_list and "
                                          "image_info[].image_name / matched_text_index")
                continue
            images, absent = [], []
            try:
                for index, name in refs:
                    if not 0 <= index < len(sentences):
                        raise ValueError(f"image {name} matches sentence {index} of {len(sentences)}")
                    file = resolve_inside(image_dir, name, allow_outside_root)
                    (images if os.path.isfile(file) else absent).append((index, file))
            except (OutsideRootError, ValueError) as e:
                bad_record(report, where, str(e))
                continue
            if len(images) < min_images:
                bad_record(report, where, f"{len(images)} of {len(refs)} images found in {image_dir} "
                                          f"(need {min_images}); download them (img2dataset) or lower min_images")
                continue
            if absent and report is not None:
                report.add(where, f"{len(absent)} of {len(refs)} images not in {image_dir}, left out of the document: "
                                  f"{', '.join(os.path.basename(p) for _, p in absent[:5])}")
            doc_id = f"{stem}-{where.rsplit(':', 1)[1]}"
            yield InterleavedDocument(doc_id, sentences, images, str(row.get("url", "")))



class MMC4(RawSource):
    """MMC4(-core) documents with their downloaded images, as interleaved documents (images placed before the
    sentence each is matched to); one shard per document file."""

    name = "mmc4"

    def __init__(self, docs: str | list[str], image_dir: str, min_images: int = 1) -> None:
        self.docs, self.image_dir, self.min_images = docs, image_dir, min_images

    def chunks(self, chunk_size: int, report: SkipReport) -> list[Sequence[RawItem]]:
        return [LazyChunk(self, path) for path in expand_files(self.docs, "MMC4 document files")]

    def read_part(self, path: str, report: SkipReport) -> Iterator[RawItem]:
        for doc in read_mmc4([Path(path)], Path(self.image_dir), report, self.min_images,
                                     self.allow_outside_root):
            at: dict[int, list[str]] = {}
            media: dict[str, tuple[str, MediaSource]] = {}
            for index, file in doc.images:
                name = f"image{len(media)}"
                media[name] = ("image", str(file))
                at.setdefault(index, []).append(f"<media:{name}>")
            text = " ".join(p for i, sentence in enumerate(doc.sentences) for p in [*at.get(i, []), sentence])
            sample = ShardSample("interleaved", text=text, source=self.name, id=doc.id)
            yield RawItem(sample_key(self.name, doc.id), sample, media)
