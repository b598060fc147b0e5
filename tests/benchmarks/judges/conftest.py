"""Tiny datasets in the standard layouts (random pixels / noise; for plumbing tests, not for quality)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

WORDS = ["red", "blue", "circle", "square", "piano", "slow", "fast", "melody", "two", "three"]


def _sentence(rng: np.random.Generator, n: int = 5) -> str:
    return " ".join(rng.choice(WORDS, n))


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    entries = []
    for i, split in enumerate(["train"] * 8 + ["val"] * 4 + ["test"] * 4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        entries.append({"filepath": "", "filename": f"{i}.png", "split": split, "cocoid": i,
                        "sentences": [{"raw": _sentence(rng)} for _ in range(5)]})
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": entries}))
    return path


@pytest.fixture
def tiny_librispeech(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    for subset, n in (("train-clean-100", 8), ("dev-clean", 4)):
        folder = tmp_path / "LibriSpeech" / subset / "19" / "198"
        folder.mkdir(parents=True)
        lines = []
        for u in range(n):
            sf.write(folder / f"19-198-{u:04d}.flac", rng.normal(0, 0.1, 16000 + 800 * u).astype(np.float32), 16000)
            lines.append(f"19-198-{u:04d} {_sentence(rng).upper()}")
        (folder / "19-198.trans.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "LibriSpeech"


@pytest.fixture
def tiny_musiccaps(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    (tmp_path / "audio").mkdir()
    rows = []
    for i, split in enumerate(["train"] * 8 + ["val"] * 4 + ["test"] * 2):
        sf.write(tmp_path / "audio" / f"clip{i}.flac", rng.normal(0, 0.1, 32000 * 2).astype(np.float32), 32000)
        rows.append({"ytid": f"clip{i}", "caption": _sentence(rng, 8), "aspect_list": "[]", "split": split,
                     "is_audioset_eval": split == "test"})
    path = tmp_path / "musiccaps.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
