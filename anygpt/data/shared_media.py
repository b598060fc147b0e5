"""Media files that several items of one ``anygpt prepare`` call reference, encoded once (``share_media``)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import torch

from anygpt.data.sources.base import MediaSource, RawItem
from anygpt.data.sources.raw import SpooledChunk

MediaKey = tuple[str, str]  # (modality, normalized absolute path)


def media_key(modality: str, source: MediaSource) -> MediaKey | None:
    """A media file's identity across sources; inline bytes, segments and codes have none."""
    return (modality, os.path.normpath(os.path.abspath(source))) if isinstance(source, str) else None



class SharedMedia:
    """Codes of the media files that more than one item of a ``prepare`` call references, kept after the first
    encoding so later references skip decoding and encoding (``prepare(share_media=True)``; off by default).

    Instruction dialogues often reuse the files of the pair datasets (AnyInstruct's, and the demo's, do), and a file
    can recur within one dataset. Only files referenced at least twice are kept, but counting the references holds
    one entry per distinct file in memory, so this is for corpora whose file list fits in memory. Chunks whose items
    are only known while reading (tars, document files, pre-tokenized lines) are not counted.
    """

    def __init__(self, shared: set[MediaKey]) -> None:
        self.shared = shared
        self.codes: dict[MediaKey, torch.Tensor] = {}
        self.hits = 0

    @classmethod
    def count(cls, chunk_lists: Sequence[Sequence[Sequence[RawItem]]]) -> SharedMedia:
        counts: Counter[MediaKey] = Counter()
        for chunks in chunk_lists:
            for chunk in chunks:
                if not isinstance(chunk, list | SpooledChunk):
                    continue
                for item in chunk:
                    counts.update(k for k in (media_key(m, src) for m, src in item.media.values()) if k is not None)
        return cls({key for key, n in counts.items() if n > 1})

    def keep(self, key: MediaKey | None, codes: torch.Tensor) -> None:
        if key in self.shared:
            self.codes[key] = codes
