"""A task's items on the way in and out: where its dataset is (`data_root`, `locate`) and what the model made of
each item (`Prediction`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anygpt.data.demo import build_demo_corpus
from anygpt.data.demo.build import load_manifest
from anygpt.data.readers import DatasetError

DEMO_DIR = Path("data/demo")


def data_root(data: Path | str | None) -> Path:
    """``data`` as given, or the demo corpus (built into ``data/demo`` when it is not there yet)."""
    if data is not None:
        path = Path(data)
        if not path.exists():
            raise DatasetError(f"--data {path} does not exist: give the dataset folder/file, or leave --data out "
                               f"to use the demo corpus ({DEMO_DIR})")
        return path
    if load_manifest(DEMO_DIR) is None:
        print(f"[benchmark] no --data given and no demo corpus in {DEMO_DIR.resolve()}: building it there "
              "(anygpt data demo --out data/demo), a few minutes")
        build_demo_corpus(DEMO_DIR)
    return DEMO_DIR


def locate(root: Path, candidates: Sequence[str], what: str, inside: str | None = None) -> Path:
    """The first of ``root`` itself or ``root/candidate`` that is the expected file, or (``inside`` given) the
    expected folder: one holding ``inside``."""
    tried = [root, *(root / c for c in candidates)]
    for path in tried:
        if (path / inside).exists() if inside is not None else path.is_file():
            return path
    looked = ", ".join(str(p / inside) if inside else str(p) for p in tried)
    raise DatasetError(f"{what} not found under {root}: tried {looked}")


def safe_name(key: str) -> str:
    """A file name for an item key (readable prefix + a hash that keeps distinct keys distinct)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return keep[:80] + "-" + hashlib.sha1(key.encode()).hexdigest()[:8]


@dataclass
class Prediction:
    """One item's model output: ``text`` for text tasks, a media ``path`` (None when the model produced none)."""

    key: str
    text: str = ""
    path: str | None = None
    note: str | None = None
    input_hash: str = ""  # the item's record and input files (a cached prediction is reused only for the same)

    @property
    def empty(self) -> bool:
        """No text (text tasks) and no media file (media tasks): a failed generation."""
        return self.path is None and not self.text.strip()
