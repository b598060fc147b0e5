"""`AnyGPTDataModule`: token shards from several sources, mixed by sampling rate, templated, packed, resumable.

The training stream of every (rank, worker) is its own resampled, seeded draw (webdataset's ``resampled=True``):
pick a source by weight, read the next sample of that source's current shard (a fresh shard drawn at random when it
ends), render its template, pack greedily into ``max_length`` blocks. Each rank yields exactly ``batches_per_epoch``
batches per epoch (``with_epoch``), so ranks never wait on each other at an epoch end.

Resuming: the stream's whole position (random state, current shard and offset per source, the sample waiting to be
packed, skip counters) is a small dict. torchdata's `StatefulDataLoader` snapshots it per worker with every batch, and
`ResumableLoader` gathers the snapshots of all ranks into the checkpoint (Lightning writes only rank 0's copy), so a
run resumed mid-epoch draws exactly the batches the uninterrupted run would have drawn.

Packing follows the release: samples are concatenated whole (``<s> ... </s>`` each) until the next would overflow the
block, which is then padded; a sample longer than ``max_length`` is truncated (counted). Attention is plain causal over
the block, so a sample can attend to the earlier samples of its block, as in the release's training.
"""

from __future__ import annotations

import copy
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader

from anygpt.data.shards import ReaderStats, decode, expand_shards, iter_raw, read_manifest
from anygpt.data.templates import Flatten, Rendered, TemplateRenderer, layout_flatten
from anygpt.vocab import ModalitySpec, UnifiedVocab, load_text_tokenizer


@dataclass
class Source:
    """One data source of the mixture.

    Args:
        shards: a directory of ``.tar`` shards, a glob (``data/shards/coco/*.tar``) or a list of them.
        weight: sampling rate (normalised over the sources; Table 7 of the paper).
        name: for logs (default: the shards spec).
        x2text_prob: probability of the media -> text direction for pairs (1.0 for caption-only sets).
        train_on: ``all`` tokens (pretraining) or ``assistant`` turns only (instruction tuning) for conversations.
    """

    shards: str | list[str]
    weight: float = 1.0
    name: str | None = None
    x2text_prob: float = 0.5
    train_on: str = "all"


# ----------------------------------------------------------------------------------------------------------------------
# The stream
# ----------------------------------------------------------------------------------------------------------------------
class MixtureStream(IterableDataset):
    """Infinite resampled mixture of sources, cut into epochs of ``batches_per_epoch`` packed batches per rank.

    ``epoch``, ``rank`` and ``world_size`` are set by the owner before iterating (workers receive a copy). The state
    (`state_dict`) is the position inside the current epoch of this worker's stream.
    """

    def __init__(self, sources: Sequence[Source], renderer: TemplateRenderer, max_length: int, batch_size: int,
                 batches_per_epoch: int, seed: int = 0, pack: bool = True, pad_id: int = 0,
                 resampled: bool = True) -> None:
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
        self.seed, self.pack, self.pad_id, self.resampled = seed, pack, pad_id, resampled
        self.epoch, self.rank, self.world_size = 0, 0, 1
        self.stats = ReaderStats()
        self.max_bad_in_a_row = 1000  # a source that yields nothing usable stops the run instead of spinning
        self._state: dict[str, Any] | None = None
        self._open: dict[int, tuple[str, int, Iterator]] = {}

    # -- state ---------------------------------------------------------------------------------------------------------
    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def _fresh_state(self) -> dict[str, Any]:
        worker, _ = self._worker()
        rng = random.Random(f"anygpt-{self.seed}-{self.epoch}-{self.rank}-{worker}")
        return {"epoch": self.epoch, "batches": 0, "rng": _rng_to_list(rng.getstate()),
                "shards": [None] * len(self.sources), "consumed": [0] * len(self.sources), "pending": None,
                "order": [0] * len(self.sources)}

    def state_dict(self) -> dict[str, Any]:
        # A deep copy: a worker's snapshot is pickled by a feeder thread while the worker already reads on.
        state = copy.deepcopy(self._state) if self._state is not None else self._fresh_state()
        state["stats"] = self.stats.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.stats.load_state_dict(state.pop("stats", {}))
        self._state = state
        self._open.clear()

    def __len__(self) -> int:
        return self.batches_per_epoch

    # -- reading -------------------------------------------------------------------------------------------------------
    def _next_sample(self, index: int, rng: random.Random):
        """Next decoded sample of source ``index``, moving to another shard when the current one ends."""
        state = self._state
        assert state is not None
        empty_shards = bad_samples = 0
        while True:
            url = state["shards"][index]
            if url is None:
                url = self._pick_shard(index, rng)
                state["shards"][index], state["consumed"][index] = url, 0
            opened = self._open.get(index)
            if opened is None or opened[0] != url or opened[1] != state["consumed"][index]:
                iterator = iter_raw(url, self.stats)
                for _ in range(state["consumed"][index]):  # resume inside the shard
                    next(iterator, None)
                opened = (url, state["consumed"][index], iterator)
            raw = next(opened[2], None)
            if raw is None:
                state["shards"][index] = None
                self._open.pop(index, None)
                empty_shards = empty_shards + 1 if state["consumed"][index] == 0 else 0
                if empty_shards > max(8, len(self.urls[index])):
                    raise RuntimeError(f"source {self.sources[index].name or self.sources[index].shards!r}: "
                                       f"{empty_shards} shards in a row held no readable sample; check its shards")
                continue
            state["consumed"][index] += 1
            self._open[index] = (url, state["consumed"][index], opened[2])
            sample = decode(raw, self.stats, self.codebook_sizes)
            if sample is not None:
                return sample
            bad_samples += 1
            if bad_samples >= self.max_bad_in_a_row:
                raise RuntimeError(f"source {self.sources[index].name or self.sources[index].shards!r}: "
                                   f"{bad_samples} unusable samples in a row (last in {url}); are these shards made "
                                   "for this vocabulary? See the warnings above.")

    def _pick_shard(self, index: int, rng: random.Random) -> str:
        urls = self.urls[index]
        if self.resampled:
            return rng.choice(urls)
        # Fixed order (validation): this rank's and worker's share of the shards, cycled. This is webdataset's
        # split_by_node + split_by_worker, done with the rank captured in the main process: inside loader workers
        # there is no process group for webdataset to ask.
        worker, workers = self._worker()
        mine = urls[self.rank::self.world_size][worker::workers]
        if not mine:
            mine = urls  # fewer shards than readers: everyone reads all of them (duplicates, but no hang)
        state = self._state
        assert state is not None
        url = mine[state["order"][index] % len(mine)]
        state["order"][index] += 1
        return url

    def _next_rendered(self, rng: random.Random) -> Rendered:
        index = rng.choices(range(len(self.sources)), weights=self.weights)[0] if len(self.sources) > 1 else 0
        source = self.sources[index]
        sample = self._next_sample(index, rng)
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
            row.add(sample.ids, False)
            row.mask[len(row) - len(sample):] = sample.mask
            if not self.pack:
                return row

    def _collate(self, rows: list[Rendered]) -> dict[str, torch.Tensor]:
        length = self.max_length if self.pack else max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row.ids, dtype=torch.long)
            mask[i, : len(row)] = torch.tensor(row.mask, dtype=torch.bool)
        return {"input_ids": ids, "loss_mask": mask}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self._state is None or self._state["epoch"] != self.epoch or not self.resampled:
            # A new epoch starts a new draw; the fixed-order (validation) stream restarts on every pass.
            self._state = self._fresh_state()
            self._open.clear()
        worker, workers = self._worker()
        share = self.batches_per_epoch // workers + (worker < self.batches_per_epoch % workers)
        state = self._state
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
def resolve_modality(item: Any) -> tuple[ModalitySpec, Flatten | None]:
    """A configured modality -> its vocabulary spec and flatten function.

    Accepted: a `Modality` or `Codec` object, ``{class_path, init_args}`` of a `Codec` subclass (plugins, e.g. from
    YAML), a registered modality name (its default codec), or a spec dict ``{name, codebook_size, markers,
    token_format, layout}`` (``layout``: ``identity`` or ``frame_major:Q``).
    """
    from anygpt.modalities.base import Codec, Modality
    from anygpt.modalities.registry import codec_class, modality_for
    from anygpt.resolve import resolve

    if isinstance(item, str):
        item = modality_for(codec_class(item)(), item)  # KeyError naming the unknown modality and the registered ones
    elif isinstance(item, dict) and "class_path" in item:  # a plugin named by class_path in the user's own config
        target = resolve(item["class_path"])
        if not (isinstance(target, type) and issubclass(target, Codec)):
            raise TypeError(f"modality class_path {item['class_path']} is not a Codec subclass")
        item = target(**(item.get("init_args") or {}))
    if isinstance(item, Codec):
        item = modality_for(item)
    if isinstance(item, Modality):
        return item.spec, item.codec.flatten
    if isinstance(item, ModalitySpec):
        return item, None
    if isinstance(item, dict):
        fields = dict(item)
        layout = fields.pop("layout", "identity")
        try:
            spec = ModalitySpec(name=fields["name"], codebook_size=int(fields["codebook_size"]),
                                markers=tuple(fields["markers"]), token_format=fields["token_format"])
        except KeyError as err:
            raise ValueError(f"modality spec {item} lacks {err}; give name, codebook_size, markers, token_format "
                             "(and optionally layout), or a registered modality name / class_path") from None
        return spec, layout_flatten(layout, spec.codebook_size)
    raise TypeError(f"cannot use {item!r} as a modality: give a name, a spec dict, a Codec or a Modality")


class AnyGPTDataModule(L.LightningDataModule):
    """Token shards -> packed training batches ``{"input_ids": [B, L], "loss_mask": [B, L]}``.

    The data module owns the `UnifiedVocab` (text tokenizer + modalities); `AnyGPTLM` reads ``datamodule.vocab`` in
    ``configure_model`` to size its embeddings, so the vocabulary is configured once.

    Args:
        text_tokenizer: checkpoint directory (``tokenizer.model`` / ``tokenizer.json``) or the file itself.
        modalities: in vocabulary order; names, spec dicts or `Modality` objects (see `resolve_modality`).
        sources / val_sources: the training mixture and the validation sources (each a `Source`).
        max_length: tokens per packed block (4500 in the paper).
        batch_size: blocks per batch on each rank.
        batches_per_epoch / val_batches: batches per rank per epoch (every rank yields the same number).
        num_workers: loader processes per rank (each reads its own resampled stream).
        instruction_tokens: add ``<-Ins->``/``<-Res->`` (instruction tuning).
        add_bos_eos: wrap samples in the text tokenizer's BOS/EOS as the release did.
        system_prompt: system line of conversations (None: the sample's own, or none).
        pack: concatenate samples into blocks (pretraining) or one sample per row (padded to the longest).
        seed: the streams' seed (with epoch, rank and worker).
    """

    def __init__(self, text_tokenizer: str, modalities: Sequence[Any], sources: Sequence[Source],
                 val_sources: Sequence[Source] | None = None, max_length: int = 4500, batch_size: int = 1,
                 batches_per_epoch: int = 1000, val_batches: int = 10, num_workers: int = 0,
                 instruction_tokens: bool = False, add_bos_eos: bool = True, system_prompt: str | None = None,
                 pack: bool = True, seed: int = 0) -> None:
        super().__init__()
        # Recorded explicitly (not from LightningCLI's context): a subclass such as DemoDataModule builds this one
        # inside its own __init__, and inference loading reads these arguments.
        self.save_hyperparameters({"text_tokenizer": text_tokenizer, "max_length": max_length, "batch_size": batch_size,
                                   "batches_per_epoch": batches_per_epoch, "val_batches": val_batches,
                                   "num_workers": num_workers, "instruction_tokens": instruction_tokens,
                                   "add_bos_eos": add_bos_eos, "system_prompt": system_prompt, "pack": pack,
                                   "seed": seed})
        resolved = [resolve_modality(m) for m in modalities]
        self.vocab = UnifiedVocab(load_text_tokenizer(text_tokenizer), [spec for spec, _ in resolved],
                                  instruction_tokens=instruction_tokens)
        self.flatten = {spec.name: fn for spec, fn in resolved if fn is not None}
        self.sources = [s if isinstance(s, Source) else Source(**s) for s in sources]
        self.val_sources = [s if isinstance(s, Source) else Source(**s) for s in (val_sources or [])]
        # Plain values only: checkpoints must load with torch.load(weights_only=True).
        self.hparams["modalities"] = [asdict(spec) for spec, _ in resolved]
        self.hparams["sources"] = [asdict(s) for s in self.sources]
        self.hparams["val_sources"] = [asdict(s) for s in self.val_sources]
        for source in self.sources + self.val_sources:
            expand_shards(source.shards)  # fail now, naming the missing path
            self._check_manifests(source)
        self.renderer = TemplateRenderer(self.vocab, self.flatten, add_bos_eos=add_bos_eos,
                                         system_prompt=system_prompt)
        self.train_stream: MixtureStream | None = None
        self._train_loader: ResumableLoader | None = None

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

    def _stream(self, sources: list[Source], batches: int, seed: int, resampled: bool) -> MixtureStream:
        stream = MixtureStream(sources, self.renderer, self.hparams.max_length, self.hparams.batch_size, batches,
                               seed=seed, pack=self.hparams.pack, resampled=resampled)
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
