"""`AnyGPTDataModule`: token shards from several sources, mixed by sampling rate, templated, packed, resumable.

The training stream of every (rank, worker): pick a source by weight, take its next sample, render its template,
pack greedily into ``max_length`` blocks. Each source is read as webdataset users expect (`SampleStream`): every pass
over its shards draws a new shard order, split among all ranks and loader workers so a pass hands each sample to
exactly one of them, and samples leave through a shuffle buffer (``shuffle_buffer`` samples per source), so a rank
never trains on one speaker, chapter or tar at a time. Each rank yields exactly ``batches_per_epoch`` batches per
epoch, so ranks never wait on each other at an epoch end; every epoch is a fresh draw seeded by ``(seed, epoch)``
(different shard orders and buffers), so set ``batches_per_epoch`` to about one pass over the data for an epoch to
see every sample once.

Resuming: the stream's whole position (random state, per source its pass, shard and offset plus its buffer as
(shard, sample) references, the sample waiting to be packed, skip counters) is a small dict. torchdata's
`StatefulDataLoader` snapshots it per worker with every batch, and `ResumableLoader` gathers the snapshots of all
ranks into the checkpoint (Lightning writes only rank 0's copy), so a run resumed mid-epoch re-reads the buffered
samples and draws exactly the batches the uninterrupted run would have drawn.

Packing follows the release: samples are concatenated whole (``<s> ... </s>`` each) until the next would overflow the
block, which is then padded; a sample longer than ``max_length`` is truncated (counted). Attention is plain causal over
the block, so a sample can attend to the earlier samples of its block, as in the release's training.
"""

from __future__ import annotations

import copy
import os
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader

from anygpt.data.checks import check_usable_modalities
from anygpt.data.schema import ShardSample
from anygpt.data.shards import ReaderStats, expand_shards, read_manifest
from anygpt.data.stream import SampleStream
from anygpt.modalities.codec import Codec
from anygpt.modalities.pretrained import qualified_name
from anygpt.modalities.registry import codec_class, configured_modality, meta_codec
from anygpt.prompts import Rendered, TemplateRenderer
from anygpt.resolve import resolve
from anygpt.text_tokenizer import load_text_tokenizer
from anygpt.vocab import UnifiedVocab


@dataclass
class Source:
    """One data source of the mixture.

    Args:
        shards: a directory of ``.tar`` shards, a glob (``data/shards/coco/*.tar``) or a list of them.
        weight: sampling rate (normalised over the sources; Table 7 of the paper).
        name: for logs (default: the shards spec).
        x2text_prob: probability of the media -> text direction for pairs (1.0 for caption-only sets).
        train_on: ``all`` tokens (pretraining) or ``assistant`` turns only (instruction tuning) for conversations.
        shuffle_buffer: samples held for shuffling this source (None: the data module's ``shuffle_buffer``).
    """

    shards: str | list[str]
    weight: float = 1.0
    name: str | None = None
    x2text_prob: float = 0.5
    train_on: str = "all"
    shuffle_buffer: int | None = None


# ----------------------------------------------------------------------------------------------------------------------
# The stream
# ----------------------------------------------------------------------------------------------------------------------
class MixtureStream(IterableDataset):
    """Endless mixture of shuffled sources, cut into epochs of ``batches_per_epoch`` packed batches per rank.

    ``epoch``, ``rank`` and ``world_size`` are set by the owner before iterating (workers receive a copy). Each source
    is a `SampleStream` for this (rank, worker): its shards split among all readers in an order drawn anew every pass,
    its samples through a shuffle buffer. An epoch is a fresh draw seeded by ``(seed, epoch)``; the state
    (`state_dict`) is the position inside the current epoch of this worker's stream.

    Args:
        shuffle: shuffle shards and samples (training); off, every source is read in shard order and each pass
            over the stream restarts it (validation).
        shuffle_buffer: samples per source held for shuffling (a source's own ``shuffle_buffer`` wins).
    """

    def __init__(self, sources: Sequence[Source], renderer: TemplateRenderer, max_length: int, batch_size: int,
                 batches_per_epoch: int, seed: int = 0, pack: bool = True, pad_id: int = 0, shuffle: bool = True,
                 shuffle_buffer: int = 1000) -> None:
        if not sources:
            raise ValueError("at least one data source is needed")
        self.sources = list(sources)
        self.urls = [expand_shards(s.shards) for s in self.sources]
        weights = [float(s.weight) for s in self.sources]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"source weights must be >= 0 with a positive sum, got {weights}")
        self.weights = [w / sum(weights) for w in weights]
        self.renderer = renderer
        self.codebook_sizes = {name: r.spec.codebook_size for name, r in renderer.vocab.modalities.items()}
        self.max_length, self.batch_size, self.batches_per_epoch = max_length, batch_size, batches_per_epoch
        self.seed, self.pack, self.pad_id, self.shuffle = seed, pack, pad_id, shuffle
        self.shuffle_buffer = shuffle_buffer
        self.epoch, self.rank, self.world_size = 0, 0, 1
        self.stats = ReaderStats()
        self.max_bad_in_a_row = SampleStream.max_bad_in_a_row
        self._state: dict[str, Any] | None = None  # epoch, batches, mixture rng, the sample waiting to be packed
        self._streams: list[SampleStream] = []  # the sources' streams of the current epoch (they hold their position)
        self._restore: list[dict[str, Any]] | None = None  # sources' saved positions, applied when iteration starts

    # -- state ---------------------------------------------------------------------------------------------------------
    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _make_streams(self) -> list[SampleStream]:
        worker, workers = self._worker()
        streams = []
        for index, (source, urls) in enumerate(zip(self.sources, self.urls, strict=True)):
            buffer = source.shuffle_buffer if source.shuffle_buffer is not None else self.shuffle_buffer
            stream = SampleStream(urls, seed=f"anygpt-{self.seed}-{self.epoch}-{index}",
                                  reader=self.rank * workers + worker, readers=self.world_size * workers,
                                  shuffle_buffer=buffer if self.shuffle else 0, shuffle_shards=self.shuffle,
                                  cycle=True, codebook_sizes=self.codebook_sizes, stats=self.stats,
                                  name=source.name or str(source.shards))
            stream.max_bad_in_a_row = self.max_bad_in_a_row
            streams.append(stream)
        return streams

    def _fresh_state(self) -> dict[str, Any]:
        worker, _ = self._worker()
        rng = random.Random(f"anygpt-{self.seed}-{self.epoch}-{self.rank}-{worker}")
        return {"epoch": self.epoch, "batches": 0, "rng": _rng_to_list(rng.getstate()), "pending": None}

    def state_dict(self) -> dict[str, Any]:
        # Copies: a worker's snapshot is pickled by a feeder thread while the worker already reads on.
        state = copy.deepcopy(self._state) if self._state is not None else self._fresh_state()
        state["sources"] = [stream.state_dict() for stream in self._streams] if self._streams else self._restore
        state["stats"] = self.stats.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.stats.load_state_dict(state.pop("stats", {}))
        self._streams = []
        if "sources" not in state:  # saved before shuffled streams: no per-source position to restore
            warnings.warn("the checkpoint's data position was saved by an older anygpt (before shuffled streams); the "
                          f"data stream restarts epoch {state.get('epoch', self.epoch)} from its beginning",
                          stacklevel=2)
            self._state, self._restore = None, None
            return
        self._restore = state.pop("sources")
        self._state = state

    def __len__(self) -> int:
        return self.batches_per_epoch

    # -- reading -------------------------------------------------------------------------------------------------------
    def _next_sample(self, index: int) -> ShardSample:
        """Next decoded sample of source ``index``."""
        return next(self._streams[index])

    def _next_rendered(self, rng: random.Random) -> Rendered:
        index = rng.choices(range(len(self.sources)), weights=self.weights)[0] if len(self.sources) > 1 else 0
        source = self.sources[index]
        sample = self._next_sample(index)
        try:
            rendered = self.renderer.render(sample, rng, x2text_prob=source.x2text_prob, train_on=source.train_on)
        except (KeyError, ValueError) as err:
            self.stats.corrupt += 1
            self.stats.note(f"shard {sample.shard}, sample {sample.key}: cannot render ({err}); skipped")
            return Rendered()
        if len(rendered) > self.max_length:
            self.stats.note_truncation(f"shard {sample.shard}, sample {sample.key}: {len(rendered)} tokens truncated "
                                       f"to max_length {self.max_length}", self.max_length)
            rendered = Rendered(rendered.ids[: self.max_length], rendered.mask[: self.max_length])
        return rendered

    def _next_row(self, rng: random.Random) -> Rendered:
        state = self._state
        assert state is not None
        row = Rendered()
        while True:
            if state["pending"] is not None:
                sample = Rendered(*state["pending"])
                state["pending"] = None
            else:
                sample = self._next_rendered(rng)
            if not len(sample):
                continue
            if len(row) + len(sample) > self.max_length:
                state["pending"] = (sample.ids, sample.mask)
                return row
            row.ids += sample.ids
            row.mask += sample.mask
            if not self.pack:
                return row

    def _collate(self, rows: list[Rendered]) -> dict[str, torch.Tensor]:
        length = self.max_length if self.pack else max(len(r) for r in rows)
        ids = np.full((len(rows), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=bool)
        for i, row in enumerate(rows):  # numpy from lists: several times faster than torch.tensor
            ids[i, : len(row)] = row.ids
            mask[i, : len(row)] = row.mask
        return {"input_ids": torch.from_numpy(ids), "loss_mask": torch.from_numpy(mask)}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self._state is None or self._state["epoch"] != self.epoch or not self.shuffle:
            # A new epoch starts a new draw; the fixed-order (validation) stream restarts on every pass.
            self._state = self._fresh_state()
            self._streams, self._restore = [], None
        if not self._streams:
            self._streams = self._make_streams()
            if self._restore is not None:  # resumed mid-epoch
                for stream, saved in zip(self._streams, self._restore, strict=True):
                    stream.load_state_dict(saved)
                self._restore = None
        state = self._state
        worker, workers = self._worker()
        share = self.batches_per_epoch // workers + (worker < self.batches_per_epoch % workers)
        rng = random.Random()
        while state["batches"] < share:
            rng.setstate(_rng_from_list(state["rng"]))
            batch = self._collate([self._next_row(rng) for _ in range(self.batch_size)])
            state["rng"] = _rng_to_list(rng.getstate())
            state["batches"] += 1
            yield batch


def _rng_to_list(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_list(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss


# ----------------------------------------------------------------------------------------------------------------------
# The loader
# ----------------------------------------------------------------------------------------------------------------------
class ResumableLoader(StatefulDataLoader):
    """A `StatefulDataLoader` of already-collated batches that also counts epochs and keeps every rank's position.

    Lightning stores the train loader's ``state_dict`` in the checkpoint, but the distributed strategies write the
    checkpoint's metadata from rank 0 only; this loader all-gathers the positions of all ranks there and each rank
    restores its own. ``state_dict`` is therefore a collective call (Lightning makes it on every rank when saving).
    """

    def __init__(self, dataset: MixtureStream, num_workers: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("persistent_workers", False)  # workers must see each epoch's `dataset.epoch`
        super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        self._epoch = 0
        self._iterated = False

    def __iter__(self):
        if self._iterated:
            self._epoch += 1
        self._iterated = True
        self.dataset.epoch = self._epoch
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        if self._iterator is None:  # not started (or just restored): keep what we have, start no workers
            local = {"epoch": self._epoch, "loader": self.next_iter_state or {}}
        elif self._iterator._finished:
            local = {"epoch": self._epoch + 1, "loader": {}}
        else:
            local = {"epoch": self._epoch, "loader": super().state_dict()}
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, local)
            return {"ranks": gathered}
        return {"ranks": [local]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks", [])
        rank = self.dataset.rank
        if len(ranks) != self.dataset.world_size:
            warnings.warn(f"the checkpoint's data position was saved with {len(ranks)} ranks, this run has "
                          f"{self.dataset.world_size}: the data stream restarts from the saved epoch's beginning",
                          stacklevel=2)
            self._epoch = ranks[0]["epoch"] if ranks else 0
            super().load_state_dict({})
        else:
            self._epoch = ranks[rank]["epoch"]
            super().load_state_dict(ranks[rank]["loader"])
        self._iterated = False


# ----------------------------------------------------------------------------------------------------------------------
# The data module
# ----------------------------------------------------------------------------------------------------------------------
def class_refs(modalities: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """How an export names the configured codecs that have no weights: by class and arguments alone (sized on the
    meta device to find out). A codec with weights needs its checkpoint, named through ``ExportBundle(tokenizers=)``."""
    refs = {}
    for item in modalities:
        if isinstance(item, str):
            codec = meta_codec(codec_class(item))
        elif isinstance(item, Mapping) and "class_path" in item:
            codec = meta_codec(resolve(item["class_path"]), **(item.get("init_args") or {}))
        elif isinstance(item, Codec):
            codec = item
        else:
            continue
        if not codec.state_dict():
            refs[codec.modality] = {"class_path": qualified_name(type(codec)), "options": codec.init_args}
    return refs


class AnyGPTDataModule(L.LightningDataModule):
    """Token shards -> packed training batches ``{"input_ids": [B, L], "loss_mask": [B, L]}``.

    The data module owns the `UnifiedVocab` (text tokenizer + modalities); ``anygpt fit`` links it into `AnyGPTLM`
    (``link_arguments`` in `anygpt.cli`), so the vocabulary is configured once.

    Args:
        text_tokenizer: checkpoint directory (``tokenizer.model`` / ``tokenizer.json``) or the file itself.
        modalities: in vocabulary order; registered names, codecs by ``{class_path, init_args}``, spec dicts or
            `Modality` objects (see `anygpt.modalities.registry.configured_modality`).
        sources / val_sources: the training mixture and the validation sources (each a `Source`).
        max_length: tokens per packed block (4500 in the paper).
        batch_size: blocks per batch on each rank.
        batches_per_epoch / val_batches: batches per rank per epoch (every rank yields the same number).
        num_workers: loader processes per rank (each reads its own share of every source).
        instruction_tokens: add ``<-Ins->``/``<-Res->`` (instruction tuning).
        add_bos_eos: wrap samples in the text tokenizer's BOS/EOS as the release did.
        system_prompt: system line of conversations (None: the sample's own, or none).
        pack: concatenate samples into blocks (pretraining) or one sample per row (padded to the longest).
        seed: the streams' seed (with epoch, rank and worker).
        shuffle_buffer: samples per source and loader worker held for shuffling (memory: that many decoded samples
            per source per worker; a `Source` may set its own). 0 reads samples in shard order.
    """

    def __init__(self, text_tokenizer: str, modalities: Sequence[str | dict[str, Any]], sources: Sequence[Source],
                 val_sources: Sequence[Source] | None = None, max_length: int = 4500, batch_size: int = 1,
                 batches_per_epoch: int = 1000, val_batches: int = 10, num_workers: int = 0,
                 instruction_tokens: bool = False, add_bos_eos: bool = True, system_prompt: str | None = None,
                 pack: bool = True, seed: int = 0, shuffle_buffer: int = 1000) -> None:
        super().__init__()
        # Recorded explicitly (not from LightningCLI's context): a subclass such as DemoDataModule builds this one
        # inside its own __init__, and inference loading reads these arguments.
        self.save_hyperparameters({"text_tokenizer": text_tokenizer, "max_length": max_length, "batch_size": batch_size,
                                   "batches_per_epoch": batches_per_epoch, "val_batches": val_batches,
                                   "num_workers": num_workers, "instruction_tokens": instruction_tokens,
                                   "add_bos_eos": add_bos_eos, "system_prompt": system_prompt, "pack": pack,
                                   "seed": seed, "shuffle_buffer": shuffle_buffer})
        resolved = [configured_modality(m) for m in modalities]
        self.vocab = UnifiedVocab(load_text_tokenizer(text_tokenizer), [spec for spec, _ in resolved],
                                  instruction_tokens=instruction_tokens)
        self.flatten = {spec.name: fn for spec, fn in resolved if fn is not None}
        # codecs without weights are named by class in the export (ExportBundle) and the .ckpt; a subclass's own first
        self.tokenizer_refs = {**class_refs(modalities), **self.__dict__.get("tokenizer_refs", {})}
        self.sources = [s if isinstance(s, Source) else Source(**s) for s in sources]
        self.val_sources = [s if isinstance(s, Source) else Source(**s) for s in (val_sources or [])]
        # Plain values only: checkpoints must load with torch.load(weights_only=True).
        self.hparams["modalities"] = [spec.to_dict() for spec, _ in resolved]
        if self.tokenizer_refs:
            self.hparams["tokenizers"] = self.tokenizer_refs
        self.hparams["sources"] = [asdict(s) for s in self.sources]
        self.hparams["val_sources"] = [asdict(s) for s in self.val_sources]
        self._shards_checked = False
        if self.shards_ready():
            self.check_shards()  # fail now, before the model is built
        self.renderer = TemplateRenderer(self.vocab, self.flatten, add_bos_eos=add_bos_eos,
                                         system_prompt=system_prompt)
        self.train_stream: MixtureStream | None = None
        self._train_loader: ResumableLoader | None = None

    def shards_ready(self) -> bool:
        """Whether the shards exist at construction (a subclass that makes them in `prepare_data` says no, and its
        shards are checked in `setup`, after Lightning ran `prepare_data` on one process per node)."""
        return True

    def check_shards(self) -> None:
        """Every source's shards exist and were made for this vocabulary, and every configured modality has items."""
        if self._shards_checked:
            return
        for source in self.sources + self.val_sources:
            expand_shards(source.shards)  # naming the missing path
            self._check_manifests(source)
        # a configured modality whose every item prepare skipped: stop now, not train on the text alone
        check_usable_modalities(self.vocab.modalities, sorted({os.path.dirname(u) for s in self.sources
                                                               for u in expand_shards(s.shards)}))
        self._shards_checked = True

    def setup(self, stage: str) -> None:
        self.check_shards()

    def _check_manifests(self, source: Source) -> None:
        """Refuse shards whose manifest says they were made for other code-book sizes."""
        import os

        for directory in sorted({os.path.dirname(u) for u in expand_shards(source.shards)}):
            if not os.path.exists(os.path.join(directory, "manifest.json")):
                continue
            sizes = (read_manifest(directory).get("vocab") or {}).get("codebook_sizes") or {}
            for name, size in sizes.items():
                rng = self.vocab.modalities.get(name)
                if rng is not None and rng.spec.codebook_size != int(size):
                    raise ValueError(f"{directory}/manifest.json: shards were made with {size} {name} codes but the "
                                     f"configured vocabulary has {rng.spec.codebook_size}; use the matching modality "
                                     "tokenizer or re-create the shards")

    def vocab_info(self) -> dict[str, Any]:
        """What `ShardWriter(vocab_info=...)` should record for shards made for this vocabulary."""
        return {"text_vocab_size": self.vocab.text.vocab_size,
                "codebook_sizes": {n: r.spec.codebook_size for n, r in self.vocab.modalities.items()}}

    def _stream(self, sources: list[Source], batches: int, seed: int, shuffle: bool) -> MixtureStream:
        stream = MixtureStream(sources, self.renderer, self.hparams.max_length, self.hparams.batch_size, batches,
                               seed=seed, pack=self.hparams.pack, shuffle=shuffle,
                               shuffle_buffer=self.hparams.get("shuffle_buffer", 1000))
        if self.trainer is not None:
            stream.rank, stream.world_size = self.trainer.global_rank, self.trainer.world_size
        return stream

    def train_dataloader(self) -> ResumableLoader:
        if self._train_loader is None:
            self.train_stream = self._stream(self.sources, self.hparams.batches_per_epoch, self.hparams.seed, True)
            self._train_loader = ResumableLoader(self.train_stream, num_workers=self.hparams.num_workers)
        return self._train_loader

    def val_dataloader(self) -> StatefulDataLoader | list:
        if not self.val_sources:
            return []
        stream = self._stream(self.val_sources, self.hparams.val_batches, self.hparams.seed + 1, False)
        return StatefulDataLoader(stream, batch_size=None, num_workers=self.hparams.num_workers)

    @property
    def stats(self) -> ReaderStats:
        """Reader counters of the main-process stream (per-worker counters travel in the loader state)."""
        return self.train_stream.stats if self.train_stream is not None else ReaderStats()
