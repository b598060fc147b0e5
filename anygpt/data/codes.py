"""Multi-level codes from token shards, for the models that train on codes rather than on text (SoundStorm).

``anygpt prepare`` with a speech source's ``all_levels: true`` keeps every RVQ level of the speech tokenizer
(``[n_q, frames]`` per utterance); `CodeShardDataModule` streams those shards the way `AnyGPTDataModule` streams the
LLM's: split by rank and loader worker, shard order drawn per pass, a shuffle buffer, every rank the same number of
batches, and a resumable position. Nothing is encoded at setup and nothing is held beyond the buffer, so a corpus the
size of MLS English trains like the demo's.

A batch is ``{"codes": [B, N, n_q] (level 1 first, padded with pad_id), "lengths": [B]}``: random crops of
``segment_frames`` frames (the start of each utterance in validation).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader

from anygpt.data.datamodule import ResumableLoader
from anygpt.data.schema import ShardSample
from anygpt.data.shards import ReaderStats, expand_shards, read_manifest
from anygpt.data.stream import SampleStream


class CodeSegmentStream(IterableDataset):
    """Crops of all-level codes of one modality from token shards, ``batches_per_epoch`` padded batches per rank.

    ``epoch``, ``rank`` and ``world_size`` are set by the owner before iterating (as for `MixtureStream`, so
    `ResumableLoader` saves and restores the position of every rank).
    """

    max_unusable_in_a_row = 1000  # shards without all levels stop the run instead of searching forever

    def __init__(self, shards: str | list[str], modality: str, segment_frames: int, batch_size: int,
                 batches_per_epoch: int, pad_id: int, seed: int = 0, shuffle: bool = True,
                 shuffle_buffer: int = 1000, min_frames: int = 2) -> None:
        self.urls = expand_shards(shards)
        self.modality, self.segment_frames, self.batch_size = modality, segment_frames, batch_size
        self.batches_per_epoch, self.pad_id, self.seed = batches_per_epoch, pad_id, seed
        self.shuffle, self.shuffle_buffer, self.min_frames = shuffle, shuffle_buffer, min_frames
        self.epoch, self.rank, self.world_size = 0, 0, 1
        self.stats = ReaderStats()
        self.skipped_items = 0  # media items without all levels, or shorter than min_frames
        self._state: dict[str, Any] | None = None
        self._stream: SampleStream | None = None
        self._restore: dict[str, Any] | None = None
        self._queue: list[torch.Tensor] = []  # the rest of the current sample's items

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _fresh_state(self) -> dict[str, Any]:
        worker, _ = self._worker()
        rng = random.Random(f"codes-{self.seed}-{self.epoch}-{self.rank}-{worker}")
        version, internal, gauss = rng.getstate()
        return {"epoch": self.epoch, "batches": 0, "rng": [version, list(internal), gauss]}

    def state_dict(self) -> dict[str, Any]:
        state = dict(self._state) if self._state is not None else self._fresh_state()
        state["rng"] = list(state["rng"])
        state["stream"] = self._stream.state_dict() if self._stream is not None else self._restore
        state["queue"] = [codes.tolist() for codes in self._queue]  # items of a sample not yet used (small)
        state["stats"] = self.stats.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.stats.load_state_dict(state.pop("stats", {}))
        self._restore = state.pop("stream")
        self._queue = [torch.tensor(codes, dtype=torch.long) for codes in state.pop("queue", [])]
        self._state, self._stream = state, None

    def _codes(self, sample: ShardSample) -> list[torch.Tensor]:
        """The sample's all-level items of the modality, as ``[frames, n_q]``."""
        every = set(sample.all_levels)
        out = []
        for name, modality in sample.media.items():
            if modality != self.modality:
                continue
            codes = torch.from_numpy(sample.codes[name].astype("int64"))
            if name not in every or codes.dim() != 2 or codes.shape[1] < self.min_frames:
                self.skipped_items += 1
                if self.skipped_items in (1, 10, 100, 1000):
                    self.stats.note(f"shard {sample.shard}, sample {sample.key}: {name} holds codes of shape "
                                    f"{list(codes.shape)}, not all levels [n_q, >= {self.min_frames} frames]; skipped "
                                    f"({self.skipped_items} so far). Prepare the source with all_levels: true.")
                continue
            out.append(codes.T.contiguous())
        return out

    def _next_item(self, rng: random.Random) -> torch.Tensor:
        assert self._stream is not None and self._state is not None
        unusable = 0
        while not self._queue:
            sample = next(self._stream)
            self._queue = self._codes(sample)
            unusable = 0 if self._queue else unusable + 1
            if unusable >= self.max_unusable_in_a_row:
                raise RuntimeError(f"{unusable} samples in a row without all-level {self.modality} codes (last: "
                                   f"{sample.shard}, {sample.key}): prepare the source with all_levels: true")
        codes = self._queue.pop(0)
        excess = codes.shape[0] - self.segment_frames
        start = (rng.randint(0, excess) if self.shuffle else 0) if excess > 0 else 0
        return codes[start:start + self.segment_frames]

    def _collate(self, items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([c.shape[0] for c in items])
        out = torch.full((len(items), int(lengths.max()), items[0].shape[1]), self.pad_id, dtype=torch.long)
        for i, codes in enumerate(items):
            out[i, : codes.shape[0]] = codes
        return {"codes": out, "lengths": lengths}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self._state is None or self._state["epoch"] != self.epoch or not self.shuffle:
            self._state, self._stream, self._restore, self._queue = self._fresh_state(), None, None, []
        worker, workers = self._worker()
        if self._stream is None:
            self._stream = SampleStream(self.urls, seed=f"codes-{self.seed}-{self.epoch}",
                                        reader=self.rank * workers + worker, readers=self.world_size * workers,
                                        shuffle_buffer=self.shuffle_buffer if self.shuffle else 0,
                                        shuffle_shards=self.shuffle, stats=self.stats, name=str(self.urls[0]))
            if self._restore is not None:
                self._stream.load_state_dict(self._restore)
                self._restore = None
        state = self._state
        share = self.batches_per_epoch // workers + (worker < self.batches_per_epoch % workers)
        rng = random.Random()
        while state["batches"] < share:
            version, internal, gauss = state["rng"]
            rng.setstate((version, tuple(internal), gauss))
            batch = self._collate([self._next_item(rng) for _ in range(self.batch_size)])
            version, internal, gauss = rng.getstate()
            state["rng"] = [version, list(internal), gauss]
            state["batches"] += 1
            yield batch


class CodeShardDataModule(L.LightningDataModule):
    """Training data for code models (SoundStorm) from token shards with all RVQ levels.

    Args:
        shards / val_shards: shard directories or globs written by ``anygpt prepare`` with ``all_levels: true``.
        modality: the media items to read (``speech``).
        segment_frames: frames per training crop (SoundStorm: 500 = 10 s at 50 Hz).
        batch_size: crops per batch on each rank.
        batches_per_epoch / val_batches: batches per rank per epoch (every rank yields the same number).
        pad_id: padding code (default: the modality's code-book size from the shards' manifest, SoundStorm's mask id).
        num_workers: loader processes per rank.
        shuffle_buffer: samples held for shuffling per loader worker.
        seed: the streams' seed (with epoch, rank and worker).
    """

    def __init__(self, shards: str | list[str], val_shards: str | list[str] | None = None, modality: str = "speech",
                 segment_frames: int = 500, batch_size: int = 16, batches_per_epoch: int = 1000,
                 val_batches: int = 20, pad_id: int | None = None, num_workers: int = 0, shuffle_buffer: int = 1000,
                 seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        urls = expand_shards(shards)  # fail now, naming the missing path
        if val_shards is not None:
            expand_shards(val_shards)
        if pad_id is None:
            sizes = (read_manifest(os.path.dirname(urls[0])).get("vocab") or {}).get("codebook_sizes") or {}
            if modality not in sizes:
                raise ValueError(f"{os.path.dirname(urls[0])}/manifest.json names no {modality} code-book size; "
                                 "pass pad_id (SoundStorm: its codebook_size)")
            pad_id = int(sizes[modality])
        self.pad_id = pad_id
        self.train_stream: CodeSegmentStream | None = None
        self._train_loader: ResumableLoader | None = None

    def _stream(self, shards: str | list[str], batches: int, seed: int, shuffle: bool) -> CodeSegmentStream:
        h = self.hparams
        stream = CodeSegmentStream(shards, h.modality, h.segment_frames, h.batch_size, batches, self.pad_id, seed=seed,
                                   shuffle=shuffle, shuffle_buffer=h.shuffle_buffer)
        if self.trainer is not None:
            stream.rank, stream.world_size = self.trainer.global_rank, self.trainer.world_size
        return stream

    def train_dataloader(self) -> ResumableLoader:
        if self._train_loader is None:
            self.train_stream = self._stream(self.hparams.shards, self.hparams.batches_per_epoch, self.hparams.seed,
                                             True)
            self._train_loader = ResumableLoader(self.train_stream, num_workers=self.hparams.num_workers)
        return self._train_loader

    def val_dataloader(self) -> StatefulDataLoader | list:
        if self.hparams.val_shards is None:
            return []
        stream = self._stream(self.hparams.val_shards, self.hparams.val_batches, self.hparams.seed + 1, False)
        return StatefulDataLoader(stream, batch_size=None, num_workers=self.hparams.num_workers)
