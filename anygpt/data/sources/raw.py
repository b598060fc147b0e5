"""`RawSource`, what ``anygpt prepare`` reads, and how a source's items are cut into chunks that never hold a dataset
in memory: file-list sources stream their records once into small json-lines plan files (`spool`) that the loader
workers read back; sources whose parts are files or line ranges hand out the part itself (`LazyChunk`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anygpt.data.schema import ShardSample
from anygpt.data.sources.base import AudioSegment, MediaSource, RawItem, SkipReport


class RawSource:
    """A raw dataset in a standard layout. Subclasses implement `items` (streamed records) or `chunks` (their own
    parts); `chunks` must be deterministic: it decides the shard layout, and reruns resume by it.

    ``allow_outside_root`` and ``spool_root`` are run options `prepare` sets on every source.
    """

    name: str = "raw"
    allow_outside_root: bool = False
    spool_root: str | None = None  # where plan files go (default: the system's temporary folder)

    def items(self, report: SkipReport) -> Iterator[RawItem]:
        """The dataset's items in a fixed order; bad rows go to ``report``."""
        raise NotImplementedError(f"{type(self).__name__} implements neither items() nor chunks()")

    def chunks(self, chunk_size: int, report: SkipReport) -> list[Sequence[RawItem]]:
        """The items cut into ordered chunks of ``chunk_size`` (written to plan files, read back by the workers)."""
        self._spool = tempfile.TemporaryDirectory(prefix=f".anygpt-plan-{self.name}-", dir=self.spool_root)
        return spool(self.items(report), chunk_size, Path(self._spool.name))

    def codebook_sizes(self) -> dict[str, int]:
        """Code-book sizes of media this source brings as codes (pre-tokenized data); tokenizers give the rest."""
        return {}

    @staticmethod
    def split_list(items: list[RawItem], chunk_size: int) -> list[Sequence[RawItem]]:
        return [items[i: i + chunk_size] for i in range(0, len(items), chunk_size)]


def _encode_media(source: MediaSource) -> Any:
    if isinstance(source, str):
        return source
    if isinstance(source, AudioSegment):
        return {"segment": [str(source.path), source.begin, source.end]}
    raise TypeError(f"a plan file holds paths and segments, not {type(source).__name__} (use a LazyChunk)")


def _decode_media(value: Any) -> MediaSource:
    if isinstance(value, str):
        return value
    path, begin, end = value["segment"]
    return AudioSegment(path, float(begin), float(end))


class SpooledChunk(Sequence):
    """A chunk's items in a json-lines plan file, read back lazily (in the loader worker)."""

    def __init__(self, path: str, count: int) -> None:
        self.path, self.count = path, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> RawItem:
        raise TypeError("plan chunks are iterated, not indexed")

    def __iter__(self) -> Iterator[RawItem]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                media = {n: (m, _decode_media(v)) for n, (m, v) in row["media"].items()}
                yield RawItem(row["key"], ShardSample.from_json(row["sample"]), media)


def spool(items: Iterator[RawItem], chunk_size: int, directory: Path) -> list[Sequence[RawItem]]:
    """Write ``items`` into one plan file per ``chunk_size`` items under ``directory``; memory stays flat."""
    chunks: list[Sequence[RawItem]] = []
    handle, count = None, 0
    try:
        for item in items:
            if handle is None:
                path = directory / f"chunk-{len(chunks):06d}.jsonl"
                handle, count = open(path, "w", encoding="utf-8"), 0
            media = {n: [m, _encode_media(v)] for n, (m, v) in item.media.items()}
            row = {"key": item.key, "sample": item.sample.to_json(), "media": media}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
            if count == chunk_size:
                handle.close()
                chunks.append(SpooledChunk(str(path), count))
                handle = None
    finally:
        if handle is not None:
            handle.close()
            chunks.append(SpooledChunk(str(path), count))
    return chunks


class LazyChunk(Sequence):
    """One part of a source (a tar, a document file, a line range) read in the loader worker by the source's
    ``read_part``; the bad rows it met are in ``bad`` afterwards (prepare reports them with the chunk)."""

    def __init__(self, source: RawSource, part: Any) -> None:
        self.source, self.part = source, part
        self.bad: list[tuple[str, str]] = []

    def __len__(self) -> int:  # unknown until read; the writer counts what arrives
        return 0

    def __getitem__(self, index: int) -> RawItem:
        raise TypeError("lazy chunks are iterated, not indexed")

    def __iter__(self) -> Iterator[RawItem]:
        report = SkipReport()
        try:
            yield from self.source.read_part(self.part, report)  # type: ignore[attr-defined]
        finally:
            self.bad = list(report.skipped)


@dataclass(frozen=True)
class LineRange:
    """Lines ``first_line .. first_line + count - 1`` of a text file, starting at byte ``offset``."""

    path: str
    offset: int
    first_line: int
    count: int


def line_ranges(path: str, lines_per_part: int) -> list[LineRange]:
    """Cut a (large) line file into ranges of ``lines_per_part`` lines by one streaming pass over its bytes."""
    parts, offset, first, count = [], 0, 1, 0
    position = 0
    with open(path, "rb") as f:
        for line in f:
            count += 1
            position += len(line)
            if count == lines_per_part:
                parts.append(LineRange(path, offset, first, count))
                offset, first, count = position, first + count, 0
    if count:
        parts.append(LineRange(path, offset, first, count))
    return parts


def read_line_range(part: LineRange) -> Iterator[tuple[str, str]]:
    """(``file:line``, line) of a `LineRange`."""
    with open(part.path, "rb") as f:
        f.seek(part.offset)
        for k in range(part.count):
            line = f.readline()
            if not line:
                return
            yield f"{part.path}:{part.first_line + k}", line.decode("utf-8")

