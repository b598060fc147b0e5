"""Images for training image tokenizers: a COCO Karpathy json + image folder, or any folder of images."""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from anygpt.data.sources.base import SkipReport
from anygpt.data.sources.coco import read_coco_karpathy
from anygpt.media import MEDIA_KINDS, MediaError, read_media
from anygpt.modalities.training import TrainValDataModule

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = MEDIA_KINDS["image"].suffixes


def find_images(root: str | Path, karpathy_json: str | None = "dataset_coco.json", split: str = "train") -> list[Path]:
    """Image files of one split.

    With a Karpathy json (``images[*].filepath/filename/split``; "restval" counts as train) the listed files under
    ``root`` are used, read as ``anygpt prepare`` reads them (`read_coco_karpathy`, captions optional): a file outside
    ``root`` or missing is skipped with a warning. Without one, every image under ``root``, a deterministic 5% (by
    name hash) forming "val".
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"Image data root {root} does not exist.")
    if karpathy_json and (root / karpathy_json).exists():
        wanted = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}.get(split, (split,))
        report = SkipReport()
        images = [Path(rec.path) for rec in read_coco_karpathy(root / karpathy_json, root, wanted, report=report,
                                                                images_only=True)]
        if report:
            log.warning("%s", report.summary())
        return images
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [p for p in files if (zlib.crc32(p.name.encode()) % 20 == 0) == (split == "val")]


class ImageFiles(Dataset):
    """Images resized to ``size`` x ``size`` (bicubic, no crop) as ``[3, size, size]`` in [0, 1].

    With ``preload`` every file is decoded once up front (a small corpus); otherwise files are read per item. Either
    way a bad file is skipped and counted in ``skipped``, never fatal.
    """

    def __init__(self, files: list[Path], size: int, preload: bool = True, hflip: bool = False) -> None:
        self.files, self.size, self.hflip = list(files), size, hflip
        self.skipped: list[str] = []
        self.cache: list[torch.Tensor] | None = None
        if preload:
            self.cache = [item for item in map(self._read, self.files) if item is not None]
            if not self.cache:
                raise ValueError(f"No usable image among {len(self.files)} files"
                                 + (f" (e.g. {self.skipped[0]})" if self.skipped else ""))

    def _read(self, file: Path) -> torch.Tensor | None:
        try:
            return read_media("image", file, image_size=self.size)
        except MediaError as err:
            self.skipped.append(f"{file}: {err}")
            log.warning("Skipping image %s", self.skipped[-1])
            return None

    def __len__(self) -> int:
        return len(self.cache) if self.cache is not None else len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.cache is not None:
            image = self.cache[index]
        else:
            for offset in range(len(self.files)):  # a bad file yields the next good one
                image = self._read(self.files[(index + offset) % len(self.files)])
                if image is not None:
                    break
            else:
                raise ValueError("No usable image in the dataset")
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return {"image": image}


class ImageDataModule(TrainValDataModule):
    """Training data for image tokenizers (``image_size`` must equal the model's)."""

    def __init__(self, root: str, karpathy_json: str | None = "dataset_coco.json", image_size: int = 64,
                 batch_size: int = 32, num_workers: int = 0, preload: bool = True, max_images: int | None = None,
                 hflip: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        train = find_images(h.root, h.karpathy_json, "train")[: h.max_images]
        val = find_images(h.root, h.karpathy_json, "val")[: h.max_images] or train[:64]
        self.train_set = ImageFiles(train, h.image_size, h.preload, hflip=h.hflip)
        self.val_set = ImageFiles(val, h.image_size, h.preload)
