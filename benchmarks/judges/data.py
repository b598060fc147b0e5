"""Training data for the judges, read from the standard dataset layouts the demo corpus also uses (through
`anygpt.data.readers`): image/caption pairs from a Karpathy-split COCO json, speech/transcript pairs from a LibriSpeech
tree, music/caption pairs from a MusicCaps csv (its ``split`` column, or is_audioset_eval for the original csv).

Each DataModule decodes its media once in ``setup`` (the demo corpus is small; at real scale point it at a subset) and
skips, counts and reports unreadable files instead of failing on them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from anygpt.data import readers
from anygpt.data.readers import SkipReport, read_coco_karpathy
from benchmarks.judges.audio import resample, to_mono

log = logging.getLogger(__name__)

KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}


# ----------------------------------------------------------------------------------------------------------- readers
@dataclass
class Item:
    path: Path
    texts: list[str]


def _checked(records, report: SkipReport, what: str) -> list:
    out = list(records)
    if len(report):
        log.warning("skipped %d bad %s record(s):\n%s", len(report), what, report.summary(5))
    return out


def read_karpathy(json_path: str | Path, split: str, image_root: str | Path | None = None) -> list[Item]:
    """Images of one Karpathy split ("train" includes "restval") with their raw captions."""
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"unknown Karpathy split {split!r}; use one of {sorted(KARPATHY_SPLITS)}")
    report = SkipReport()
    records = read_coco_karpathy(Path(json_path), image_root, KARPATHY_SPLITS[split], report)
    return [Item(r.path, r.captions) for r in _checked(records, report, "image") if r.captions]


def read_librispeech(root: str | Path, subsets: Sequence[str]) -> list[Item]:
    """Utterances of LibriSpeech subsets (e.g. "train-clean-100") with their transcripts."""
    report = SkipReport()
    records = readers.read_librispeech(Path(root), list(subsets), report, with_alignment=False)
    return [Item(r.path, [r.text]) for r in _checked(records, report, "utterance")]


def read_musiccaps(csv_path: str | Path, audio_dir: str | Path | None, split: str) -> list[Item]:
    """Clips of a MusicCaps-style csv: its ``split`` column, or "test" = is_audioset_eval rows, "train" = the rest."""
    report = SkipReport()
    records = readers.read_musiccaps(Path(csv_path), Path(audio_dir) if audio_dir else None, split, report)
    return [Item(r.path, [r.caption]) for r in _checked(records, report, "music")]


def load_audio(path: Path, sample_rate: int) -> Tensor:
    """Mono float waveform at ``sample_rate``."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(to_mono(torch.from_numpy(data.T.copy()), str(path)), sr, sample_rate)


def decode_all(items: list[Item], load: Callable[[Path], Tensor], what: str) -> tuple[list[Tensor], list[Item]]:
    """Decode every item; unreadable ones are skipped, counted and logged (not fatal)."""
    out, kept, bad = [], [], []
    for item in items:
        try:
            out.append(load(item.path))
            kept.append(item)
        except Exception as e:  # noqa: BLE001 - any decoder error means "skip this file"
            bad.append(f"{item.path}: {e}")
    if bad:
        log.warning("skipped %d unreadable %s files (first: %s)", len(bad), what, bad[0])
    if not out:
        raise ValueError(f"no readable {what} files (first error: {bad[0] if bad else 'no items'})")
    return out, kept


# ------------------------------------------------------------------------------------------------------- datasets
class PairDataset(Dataset):
    """(media tensor, one of its texts) pairs; during training a random caption, otherwise the first."""

    def __init__(self, media: list[Tensor], texts: list[list[str]], random_text: bool) -> None:
        self.media, self.texts, self.random_text = media, texts, random_text

    def __len__(self) -> int:
        return len(self.media)

    def __getitem__(self, i: int) -> tuple[Tensor, str]:
        texts = self.texts[i]
        return self.media[i], random.choice(texts) if self.random_text else texts[0]


class _PairDataModule(L.LightningDataModule):
    """Shared loader plumbing; subclasses fill ``self.train_set`` / ``self.val_set`` in ``setup``."""

    def __init__(self, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.train_set: PairDataset | None = None
        self.val_set: PairDataset | None = None

    def collate(self, batch: list, train: bool = False) -> tuple:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          num_workers=self.num_workers, collate_fn=partial(self.collate, train=True),
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=self.collate)


class ImageCaptionData(_PairDataModule):
    """Karpathy-split image/caption pairs as normalized image tensors + raw captions."""

    def __init__(self, karpathy_json: str, image_root: str | None = None, image_size: int = 64,
                 train_split: str = "train", val_split: str = "val", val_limit: int = 200, batch_size: int = 128,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        from benchmarks.judges.clip import image_transform

        h = self.hparams
        transform = image_transform(h.image_size)

        def load(path: Path) -> Tensor:
            from PIL import Image

            with Image.open(path) as im:
                return transform(im.convert("RGB"))

        for name, split, limit in (("train_set", h.train_split, None), ("val_set", h.val_split, h.val_limit)):
            items = read_karpathy(h.karpathy_json, split, h.image_root)[:limit]
            images, items = decode_all(items, load, "image")
            setattr(self, name, PairDataset(images, [it.texts for it in items], random_text=name == "train_set"))

    def collate(self, batch: list, train: bool = False) -> tuple[Tensor, list[str]]:
        return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class AudioTextData(_PairDataModule):
    """Waveform/text pairs (music + caption from MusicCaps, or speech + transcript from LibriSpeech).

    ``crop_seconds`` cuts a random window from each training clip (augmentation; also bounds memory per batch).
    """

    def __init__(self, layout: str, root: str, train: Sequence[str] = ("train",), val: Sequence[str] = (),
                 audio_dir: str | None = None, sample_rate: int = 16000, val_fraction: float = 0.0,
                 val_limit: int = 200,
                 crop_seconds: float | None = None, batch_size: int = 32, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__(batch_size, num_workers, seed)
        if layout not in ("musiccaps", "librispeech"):
            raise ValueError(f"layout must be 'musiccaps' or 'librispeech', got {layout!r}")
        self.save_hyperparameters()

    def _read(self, splits: Sequence[str]) -> list[Item]:
        h = self.hparams
        if h.layout == "librispeech":
            return read_librispeech(h.root, splits)
        return [it for s in splits for it in read_musiccaps(h.root, h.audio_dir, s)]

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        train = self._read(h.train)
        val = self._read(h.val) if h.val else []
        if h.val_fraction > 0:  # carve a fixed validation slice out of the training split (MusicCaps has no val)
            order = np.random.default_rng(h.seed).permutation(len(train))
            n_val = max(1, int(len(train) * h.val_fraction))
            val = val + [train[i] for i in order[:n_val]]
            train = [train[i] for i in sorted(order[n_val:])]
        if not val:
            raise ValueError("no validation items: give `val` splits or a `val_fraction` > 0")
        load = lambda p: load_audio(p, h.sample_rate)  # noqa: E731
        wavs, train = decode_all(train, load, "audio")
        self.train_set = PairDataset(wavs, [it.texts for it in train], random_text=True)
        wavs, val = decode_all(val[: h.val_limit], load, "audio")
        self.val_set = PairDataset(wavs, [it.texts for it in val], random_text=False)
        log.info("audio/text pairs: %d train, %d val", len(self.train_set), len(self.val_set))

    def collate(self, batch: list, train: bool = False) -> tuple[Tensor, Tensor, list[str]]:
        wavs = [b[0] for b in batch]
        crop = self.hparams.crop_seconds
        if crop is not None and train:
            n = int(crop * self.hparams.sample_rate)
            wavs = [w if w.numel() <= n else w[(s := random.randint(0, w.numel() - n)): s + n] for w in wavs]
        lengths = torch.tensor([w.numel() for w in wavs])
        out = torch.zeros(len(wavs), int(lengths.max()))
        for i, w in enumerate(wavs):
            out[i, : w.numel()] = w
        return out, lengths, [b[1] for b in batch]
