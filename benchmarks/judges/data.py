"""Training data for the judges, read from the standard dataset layouts the demo corpus also uses (through
`anygpt.data.sources`): image/caption pairs from a Karpathy-split COCO json, speech/transcript pairs from a LibriSpeech
tree, music/caption pairs from a MusicCaps csv (its ``split`` column, or is_audioset_eval for the original csv).

Media are read from disk when a batch asks for them (through `anygpt.media`), so memory does not grow with the
dataset; ``cache_media=True`` keeps decoded media in memory after the first epoch (opt-in: worth it for the small demo
corpus, where decoding and resampling would dominate; each loader worker then holds its own copy). ``setup`` checks
every file's header and skips, counts and reports unreadable files instead of failing on them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from anygpt import media
from anygpt.data.sources import librispeech, musiccaps
from anygpt.data.sources.base import SkipReport
from anygpt.data.sources.coco import read_coco_karpathy
from benchmarks.judges.audio import pad_batch
from benchmarks.judges.clip import image_transform

log = logging.getLogger(__name__)

KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}


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
    records = librispeech.read_librispeech(Path(root), list(subsets), report, with_alignment=False)
    return [Item(r.path, [r.text]) for r in _checked(records, report, "utterance")]


def read_musiccaps(csv_path: str | Path, audio_dir: str | Path | None, split: str) -> list[Item]:
    """Clips of a MusicCaps-style csv: its ``split`` column, or "test" = is_audioset_eval rows, "train" = the rest."""
    report = SkipReport()
    records = musiccaps.read_musiccaps(Path(csv_path), Path(audio_dir) if audio_dir else None, split, report)
    return [Item(r.path, [r.caption]) for r in _checked(records, report, "music")]


def load_audio(path: Path, sample_rate: int) -> Tensor:
    """Mono float waveform [T] at ``sample_rate`` (`anygpt.media.read_audio`)."""
    return media.read_audio(path, sample_rate)[0]


def load_image(path: Path, transform: Callable | None = None) -> Any:
    """An RGB image (`anygpt.media.read_image`), through ``transform`` when given."""
    image = media.read_image(path)
    return transform(image) if transform is not None else image


def check_image(path: Path) -> None:
    """Header-only check: Pillow identifies the file as an image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018
    except Exception as err:  # noqa: BLE001 - any Pillow error means "not an image"
        raise media.MediaError(f"cannot read image file {path}: {err}") from err


def readable(items: list[Item], check: Callable[[Path], None], what: str) -> list[Item]:
    """The items whose file passes ``check`` (a header read, no decoding); the others are skipped, counted and
    logged (not fatal)."""
    kept, bad = [], []
    for item in items:
        try:
            check(item.path)
            kept.append(item)
        except Exception as e:  # noqa: BLE001 - any reader error means "skip this file"
            bad.append(f"{item.path}: {e}")
    if bad:
        log.warning("skipped %d unreadable %s files (first: %s)", len(bad), what, bad[0])
    if not kept:
        raise ValueError(f"no readable {what} files (first error: {bad[0] if bad else 'no items'})")
    return kept


class PairDataset(Dataset):
    """(media tensor, one of its texts) pairs, media read by ``load`` when an item is asked for; during training a
    random caption, otherwise the first. ``cache`` keeps decoded media (opt-in: memory grows with the data)."""

    def __init__(self, items: list[Item], load: Callable[[Path], Tensor], random_text: bool,
                 cache: bool = False) -> None:
        self.paths = [it.path for it in items]
        self.texts = [it.texts for it in items]
        self.load, self.random_text = load, random_text
        self.cached: dict[int, Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def media(self, i: int) -> Tensor:
        if self.cached is None:
            return self.load(self.paths[i])
        if i not in self.cached:
            self.cached[i] = self.load(self.paths[i])
        return self.cached[i]

    def __getitem__(self, i: int) -> tuple[Tensor, str]:
        texts = self.texts[i]
        return self.media(i), random.choice(texts) if self.random_text else texts[0]


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
                 num_workers: int = 0, seed: int = 0, cache_media: bool = False) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        load = partial(load_image, transform=image_transform(h.image_size))
        for name, split, limit in (("train_set", h.train_split, None), ("val_set", h.val_split, h.val_limit)):
            items = readable(read_karpathy(h.karpathy_json, split, h.image_root)[:limit], check_image, "image")
            setattr(self, name, PairDataset(items, load, random_text=name == "train_set", cache=h.cache_media))

    def collate(self, batch: list, train: bool = False) -> tuple[Tensor, list[str]]:
        return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class AudioTextData(_PairDataModule):
    """Waveform/text pairs (music + caption from MusicCaps, or speech + transcript from LibriSpeech).

    ``crop_seconds`` cuts a random window from each training clip (augmentation; also bounds memory per batch).
    """

    def __init__(self, layout: str, root: str, train: Sequence[str] = ("train",), val: Sequence[str] = (),
                 audio_dir: str | None = None, sample_rate: int = 16000, val_fraction: float = 0.0,
                 val_limit: int = 200, crop_seconds: float | None = None, batch_size: int = 32, num_workers: int = 0,
                 seed: int = 0, cache_media: bool = False) -> None:
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
        load = partial(load_audio, sample_rate=h.sample_rate)
        self.train_set = PairDataset(readable(train, media.audio_info, "audio"), load, random_text=True,
                                     cache=h.cache_media)
        self.val_set = PairDataset(readable(val[: h.val_limit], media.audio_info, "audio"), load, random_text=False,
                                   cache=h.cache_media)
        log.info("audio/text pairs: %d train, %d val", len(self.train_set), len(self.val_set))

    def collate(self, batch: list, train: bool = False) -> tuple[Tensor, Tensor, list[str]]:
        wavs = [b[0] for b in batch]
        crop = self.hparams.crop_seconds
        if crop is not None and train:
            n = int(crop * self.hparams.sample_rate)
            wavs = [w if w.numel() <= n else w[(s := random.randint(0, w.numel() - n)): s + n] for w in wavs]
        return *pad_batch(wavs), [b[1] for b in batch]
