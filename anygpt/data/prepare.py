"""``anygpt prepare``: raw datasets -> token shards, by running the modality tokenizers in Lightning's predict loop.

The work is cut into chunks that each become one shard (``shard-000042.tar`` + a ``.json`` sidecar with its counts and
skipped items). A chunk is done when both files exist, so a rerun skips finished chunks (resumable), and ranks/workers
split chunks among themselves (multi-GPU, multi-node). Files that fail to decode or encode are skipped, counted and
listed in ``prepare_report.json``; nothing is dropped silently. Chunks are descriptions (plan files, file parts), never
the dataset itself, so memory does not grow with the number of items (`benchmarks/perf/prepare_memory.py`).

The sources (one module per raw layout) live in `anygpt.data.sources`; their classes are importable from here too.
"""

from __future__ import annotations

import io
import json
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from anygpt.data.checks import PREPARE_REPORT, code_problem, codec_name
from anygpt.data.schema import ShardSample
from anygpt.data.shards import MANIFEST, ShardWriter, write_json_atomic, write_manifest
from anygpt.data.shared_media import MediaKey, SharedMedia, media_key
from anygpt.data.sources import (  # noqa: F401  (the sources are named as anygpt.data.prepare.X in configs too)
    MLS,
    MMC4,
    VCTK,
    AnyInstruct,
    AudioCaptionCsv,
    CocoKarpathy,
    CommonVoice,
    GigaSpeech,
    ImageTextTars,
    JourneyDB,
    LibriSpeech,
    MusicCaps,
    RawSource,
    ReleaseConversations,
    ReleaseDocuments,
    ReleasePairs,
)
from anygpt.data.sources.base import AudioSegment, DatasetError, RawItem, SkipReport
from anygpt.data.sources.registry import SourceRegistryError, describe, load_plugins
from anygpt.media import MediaError
from anygpt.modalities.codec import Modality
from anygpt.modalities.registry import TokenizerRef, TokenizerSpec


# ----------------------------------------------------------------------------------------------------------------------
# The predict loop
# ----------------------------------------------------------------------------------------------------------------------
def cut_segment(segment: AudioSegment) -> bytes:
    """The time range of a long recording as a wav file in memory (what a tokenizer's ``load`` reads)."""
    import soundfile as sf

    try:
        info = sf.info(str(segment.path))
        start, stop = int(segment.begin * info.samplerate), int(segment.end * info.samplerate)
        data, rate = sf.read(str(segment.path), start=start, stop=min(stop, info.frames), dtype="float32",
                             always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DatasetError(f"cannot read {segment.path}: {err}") from None
    if not len(data):
        raise DatasetError(f"{segment.path} has no audio in [{segment.begin}, {segment.end}] s "
                                   f"(it lasts {info.frames / info.samplerate:.2f} s)")
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@dataclass
class _Loaded:
    chunk: int
    key: str
    sample: ShardSample
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    error: str | None = None  # set when a media file failed to load
    error_modality: str | None = None  # the modality whose media made ``error`` (reports and `fit` read it)
    media_keys: dict[str, MediaKey | None] = field(default_factory=dict)  # item name -> file identity (paths only)
    cached: set[str] = field(default_factory=set)  # item names whose codes come from the `SharedMedia` cache
    encoded: set[str] = field(default_factory=set)  # item names whose tensors are codes already


@dataclass
class _ChunkEnd:
    chunk: int
    bad_rows: list[tuple[str, str]]


def _encode_batch(modality: Modality, tensors: list[torch.Tensor],
                  all_levels: bool = False) -> list[torch.Tensor | Exception]:
    """One `encode` call for the batch (``encode_all_levels`` to keep every RVQ level); if it fails, item by item to
    find the culprit(s)."""
    codec = modality.codec
    encode = codec.encode
    if all_levels:
        encode = getattr(codec, "encode_all_levels", None)
        if encode is None:
            error = ValueError(f"{type(codec).__name__} has no encode_all_levels: all_levels needs a residual "
                               "speech tokenizer (SpeechTokenizer)")
            return [error] * len(tensors)
    tensors = [t.to(codec.device) for t in tensors]
    try:
        return [c.cpu() for c in encode(tensors)]
    except Exception:
        out: list[torch.Tensor | Exception] = []
        for t in tensors:
            try:
                out.append(encode([t])[0].cpu())
            except Exception as err:
                out.append(err)
        return out


def encode_entries(entries: Sequence[_Loaded | _ChunkEnd], modalities: Mapping[str, Modality]) -> None:
    """Encode the loaded media of ``entries`` in place (one `encode` call per modality and level choice), isolating
    failures."""
    jobs: dict[tuple[str, bool], list[tuple[_Loaded, str]]] = defaultdict(list)
    for entry in entries:
        if isinstance(entry, _Loaded) and entry.error is None:
            every = set(entry.sample.all_levels)
            for name in entry.tensors:
                if name not in entry.cached and name not in entry.encoded:
                    jobs[entry.sample.media[name], name in every].append((entry, name))
    for (modality, all_levels), refs in jobs.items():
        codec = modalities[modality].codec
        results = _encode_batch(modalities[modality], [e.tensors[n] for e, n in refs], all_levels)
        for (entry, name), result in zip(refs, results, strict=True):
            problem = (f"{modality} tokenizer {codec_name(codec)} failed on {name}: {result}"
                       if isinstance(result, Exception) else code_problem(codec, result, all_levels))
            if problem is not None:
                if entry.error is None:
                    entry.error, entry.error_modality = f"{problem} ({modality} media {name})", modality
            else:
                entry.tensors[name] = result
                entry.encoded.add(name)


class _PendingItems(IterableDataset):
    """Items of the chunks still to do, split over ranks and workers by chunk; media decoded in the worker, and
    encoded there too when ``encode_in_workers`` (CPU runs: each loader process is one more encoder)."""

    def __init__(self, chunks: Mapping[int, Sequence[RawItem]], modalities: Mapping[str, Modality],
                 cached: frozenset[MediaKey] = frozenset(), encode_in_workers: bool = False,
                 batch_size: int = 16) -> None:
        self.chunks = dict(sorted(chunks.items()))
        self.modalities = dict(modalities)
        self.cached = cached  # files already encoded by this rank: not decoded again
        self.encode_in_workers, self.batch_size = encode_in_workers, batch_size

    def _mine(self) -> list[int]:
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        slot, slots = rank * workers + worker, world * workers
        return [c for i, c in enumerate(self.chunks) if i % slots == slot]

    def _load(self, index: int, item: RawItem) -> _Loaded:
        media = {name: modality for name, (modality, _) in item.media.items()}
        loaded = _Loaded(index, item.key, replace(item.sample, media=media))
        for name, (modality, source) in item.media.items():
            if isinstance(source, np.ndarray):  # codes already made (the release's token strings)
                loaded.tensors[name] = torch.from_numpy(source)
                loaded.encoded.add(name)
                continue
            if modality not in self.modalities:
                where = f"{name} = {source}" if isinstance(source, str) else name
                loaded.error = (f"no tokenizer configured for modality {modality!r} (media {where}); configure one "
                                f"with --tokenizers.{modality} PATH (or tokenizers: {{{modality}: ...}} in the config)")
                loaded.error_modality = modality
                break
            key = loaded.media_keys[name] = media_key(modality, source)
            if key in self.cached:
                loaded.cached.add(name)
                continue
            try:
                content = cut_segment(source) if isinstance(source, AudioSegment) else source
                loaded.tensors[name] = self.modalities[modality].read(content)
            except (MediaError, DatasetError) as err:  # an unusable file: skip this item, keep the rest
                where = (source if isinstance(source, str) else
                         f"{source.path} [{source.begin}, {source.end}] s" if isinstance(source, AudioSegment) else
                         f"{item.key}:{name}")
                loaded.error, loaded.error_modality = f"cannot load {where}: {err}", modality
                break
        return loaded

    def __iter__(self) -> Iterator[_Loaded | _ChunkEnd]:
        pending: list[_Loaded | _ChunkEnd] = []
        for index in self._mine():
            chunk = self.chunks[index]
            for item in chunk:
                pending.append(self._load(index, item))
                if not self.encode_in_workers or len(pending) >= self.batch_size:
                    yield from self._flush(pending)
            pending.append(_ChunkEnd(index, list(getattr(chunk, "bad", []))))
            yield from self._flush(pending)

    def _flush(self, pending: list[_Loaded | _ChunkEnd]) -> Iterator[_Loaded | _ChunkEnd]:
        if self.encode_in_workers:
            encode_entries(pending, self.modalities)
        yield from pending
        pending.clear()


def _collate(batch: list) -> list:
    return batch


class TokenizeModule(L.LightningModule):
    """Encodes a batch of loaded items (what the loader workers did not encode already) and fills in the codes of
    files shared with earlier items from the `SharedMedia` cache."""

    def __init__(self, modalities: Mapping[str, Modality], shared: SharedMedia | None = None) -> None:
        super().__init__()
        self.modalities = dict(modalities)
        self.codecs = torch.nn.ModuleDict({name: m.codec for name, m in self.modalities.items()})  # moved to devices
        self.shared = shared or SharedMedia(set())

    def predict_step(self, batch: list, batch_idx: int) -> list:
        for entry in batch:
            if isinstance(entry, _Loaded) and entry.error is None:
                for name in entry.cached:
                    entry.tensors[name] = self.shared.codes[entry.media_keys[name]]
                    self.shared.hits += 1
        encode_entries(batch, self.modalities)
        for entry in batch:
            if isinstance(entry, _Loaded) and entry.error is None:
                for name in entry.encoded:
                    self.shared.keep(entry.media_keys.get(name), entry.tensors[name])
        return batch


class _ShardOutput(BasePredictionWriter):
    """Collects encoded items per chunk and writes the chunk's shard + sidecar when its end marker arrives."""

    def __init__(self, out: Path, vocab_info: dict[str, Any]) -> None:
        super().__init__(write_interval="batch")
        self.out, self.vocab_info = out, vocab_info
        self.pending: dict[int, list[_Loaded]] = defaultdict(list)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        for entry in prediction:
            if isinstance(entry, _Loaded):
                self.pending[entry.chunk].append(entry)
            else:
                self._finish(entry)

    def _finish(self, end: _ChunkEnd) -> None:
        entries = self.pending.pop(end.chunk, [])
        skipped = list(end.bad_rows)
        writer = ShardWriter(self.out, maxcount=10**12, maxsize=float("inf"), vocab_info=self.vocab_info,
                             start_index=end.chunk, manifest=False)
        keys: set[str] = set()
        for entry in entries:
            if entry.error:
                skipped.append((entry.key, entry.error, entry.error_modality))
                continue
            if entry.key in keys:  # webdataset would merge the two into one broken sample
                skipped.append((entry.key, "duplicate key: an earlier item of this shard has the same id"))
                continue
            keys.add(entry.key)
            codes = {name: _as_codes(t) for name, t in entry.tensors.items()}
            writer.write(entry.key, entry.sample.to_json(), codes)
        writer.close()
        write_json_atomic(_sidecar(self.out, end.chunk), {"chunk": end.chunk, "shards": writer.shards,
                                                          "modalities": dict(writer.modalities), "skipped": skipped})


def _sidecar(out: Path, chunk: int) -> Path:
    """The json beside a chunk's shard (``shard-000042.json``), written last: it marks the chunk as finished."""
    return out / f"shard-{chunk:06d}.json"


def _as_codes(codes: torch.Tensor) -> np.ndarray:
    array = codes.cpu().numpy()
    return array.astype(np.int16 if array.size == 0 or int(array.max()) < 2**15 else np.int32)


# ----------------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------------
def prepare(sources: dict[str, RawSource], tokenizers: dict[str, TokenizerSpec], out: str = "data/shards",
            chunk_size: int = 1000, batch_size: int = 16, num_workers: int = 2, accelerator: str = "auto",
            devices: int | str = 1, num_nodes: int = 1, progress: bool = True, encode_in_workers: bool | None = None,
            trust_code: bool = False, allow_outside_root: bool = False,
            share_media: bool = False) -> dict[str, dict[str, Any]]:
    """Tokenize raw datasets into webdataset shards, one folder per source (``out/<name>/``).

    Args:
        sources: name -> raw dataset reader (``class_path`` of a `RawSource`: its registered name such as
            CocoKarpathy, see `anygpt.data.sources.registry`, or a dotted path).
        tokenizers: modality name -> tokenizer (a `TokenizerRef`: a checkpoint path, or path + class_path + options;
            ``--tokenizers.image PATH`` on the command line). Sources that bring codes (the release's pre-tokenized
            jsonl) need none.
        out: output root; each source writes ``shard-NNNNNN.tar`` + sidecars + ``manifest.json`` there.
        chunk_size: raw items per shard (file-list sources; tar sources keep one shard per input tar).
        batch_size: items per tokenizer call.
        num_workers: data-loader processes decoding media.
        accelerator / devices / num_nodes: as Lightning's Trainer (several devices run DDP, each rank its own chunks).
        progress: show a progress bar.
        encode_in_workers: run the tokenizers in the data-loader processes too, not only in the main one (default:
            on CPU with ``num_workers > 0``, where each worker is one more encoder; on GPUs the main process encodes).
        trust_code: let a tokenizer folder's ``config.json`` name a class that is neither registered nor part of
            anygpt (its module gets imported). Off by default: loading a checkpoint never runs code it names.
        allow_outside_root: read media that a dataset's rows name outside the dataset's root folder (``../..``,
            absolute paths). Off by default: such rows are reported as bad and not read.
        share_media: encode a file that several items (of any source) name only once, keeping its codes (memory:
            one entry per distinct file of the file-list sources). Off by default.

    Returns:
        source name -> summary (samples, skipped, shards, seconds).
    """
    for option, value in (("chunk_size", chunk_size), ("batch_size", batch_size)):
        if value < 1:  # before any model is loaded or file written
            raise ValueError(f"--{option} must be at least 1, got {value}")
    refs = {name: TokenizerRef.of(ref) for name, ref in tokenizers.items()}
    # a class_path written in the user's own config is the user's choice; a folder's config.json is checked
    modalities = {name: ref.load(name, trust_code=trust_code) for name, ref in refs.items()}
    sizes = {n: m.codebook_size for n, m in modalities.items()}
    for name, source in sources.items():
        for modality, size in source.codebook_sizes().items():
            if sizes.setdefault(modality, size) != size:
                raise ValueError(f"source {name!r} brings {modality} codes of a {size}-code book but the {modality} "
                                 f"tokenizer has {sizes[modality]}; they cannot share a vocabulary")
    vocab_info = {"codebook_sizes": sizes, "tokenizers": {n: str(ref.path) for n, ref in refs.items()}}
    for name, source in sources.items():
        (Path(out) / name).mkdir(parents=True, exist_ok=True)
        source.allow_outside_root, source.spool_root = allow_outside_root, str(Path(out) / name)
    plans = {name: _Plan.make(name, source, Path(out) / name, chunk_size) for name, source in sources.items()}
    shared = (SharedMedia.count([list(plan.pending.values()) for plan in plans.values()]) if share_media
              else SharedMedia(set()))
    summaries = {}
    for plan, source in zip(plans.values(), sources.values(), strict=True):
        summaries[plan.name] = _prepare_source(plan, modalities, shared, vocab_info, batch_size, num_workers,
                                               accelerator, devices, num_nodes, progress, encode_in_workers)
        spool = getattr(source, "_spool", None)
        if spool is not None:  # this source's plan files are no longer needed
            spool.cleanup()
    return summaries


@dataclass
class _Plan:
    """One source's chunks and which of them a previous run already finished (their sidecar exists)."""

    name: str
    out: Path
    chunks: list[Sequence[RawItem]]
    pending: dict[int, Sequence[RawItem]]
    report: SkipReport

    @classmethod
    def make(cls, name: str, source: RawSource, out: Path, chunk_size: int) -> _Plan:
        report = SkipReport()
        chunks = source.chunks(chunk_size, report)
        pending = {i: c for i, c in enumerate(chunks) if not _sidecar(out, i).exists()}
        return cls(name, out, chunks, pending, report)


def _prepare_source(plan: _Plan, modalities: dict[str, Modality], shared: SharedMedia, vocab_info: dict[str, Any],
                    batch_size: int, num_workers: int, accelerator: str, devices: int | str, num_nodes: int,
                    progress: bool, encode_in_workers: bool | None) -> dict[str, Any]:
    start = time.perf_counter()
    name, out, pending = plan.name, plan.out, plan.pending
    out.mkdir(parents=True, exist_ok=True)
    print(f"[prepare] {name}: {len(plan.chunks)} chunks, {len(plan.chunks) - len(pending)} already done, "
          f"{len(pending)} to tokenize -> {out}")
    if pending:
        with _own_random_state():
            hits = shared.hits
            trainer = L.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, logger=False,
                                use_distributed_sampler=False, enable_progress_bar=progress,
                                enable_model_summary=False, callbacks=[_ShardOutput(out, vocab_info)],
                                inference_mode=True)
            if encode_in_workers is None:
                encode_in_workers = num_workers > 0 and isinstance(trainer.accelerator, CPUAccelerator)
            items = _PendingItems(pending, modalities, frozenset(shared.codes), encode_in_workers, batch_size)
            loader = DataLoader(items, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                                persistent_workers=False)
            with warnings.catch_warnings():  # iterable datasets have no batch indices; the writer needs none
                warnings.filterwarnings("ignore", message=".*infer the batch indices.*")
                trainer.predict(TokenizeModule(modalities, shared), dataloaders=loader, return_predictions=False)
            trainer.strategy.barrier()
        if trainer.global_rank != 0:
            return {}
        if shared.hits > hits:
            print(f"[prepare] {name}: {shared.hits - hits} media files reused from earlier encodings")
    return _write_summary(plan, vocab_info, time.perf_counter() - start)


@contextmanager
def _own_random_state() -> Iterator[None]:
    """Leave the global generators (torch CPU, numpy, random) as found: a run that prepares its data and then
    initialises its model (the demo) draws the same weights whether it tokenized chunks or found them done."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _write_summary(plan: _Plan, vocab_info: dict[str, Any], seconds: float) -> dict[str, Any]:
    name, out = plan.name, plan.out
    shards, skipped, modalities = [], list(plan.report.skipped), defaultdict(int)
    missing = []
    for i in range(len(plan.chunks)):
        sidecar = _sidecar(out, i)
        if not sidecar.exists():
            missing.append(i)
            continue
        info = json.loads(sidecar.read_text())
        shards.extend(info["shards"])
        skipped.extend(tuple(s) for s in info["skipped"])
        for modality, count in info["modalities"].items():
            modalities[modality] += count
    if missing:
        raise RuntimeError(f"{len(missing)} chunk(s) of {out} were not written (first: {missing[:5]}); rerun the same "
                           "command to finish them.")
    write_manifest(out, shards, dict(modalities), vocab_info)
    rows = [{"item": s[0], "reason": s[1], **({"modality": s[2]} if len(s) > 2 and s[2] else {})} for s in skipped]
    (out / PREPARE_REPORT).write_text(json.dumps({"source": name, "skipped": rows}, indent=1, ensure_ascii=False))
    samples = sum(s["samples"] for s in shards)
    summary = {"samples": samples, "skipped": len(skipped), "shards": len(shards), "seconds": round(seconds, 2)}
    print(f"[prepare] {name}: {samples} samples in {len(shards)} shards, {len(skipped)} skipped "
          f"(listed in {out / PREPARE_REPORT}), manifest {out / MANIFEST}")
    return summary


def cli_setup() -> None:
    """Before ``anygpt prepare`` reads its config: import the plugin sources, so a config names them by class name; a
    broken or clashing plugin stops the command here, named (`anygpt.data.sources.registry`)."""
    try:
        load_plugins()
    except SourceRegistryError as err:
        raise SystemExit(f"anygpt prepare: error: {err}") from None


prepare.cli_setup = cli_setup  # type: ignore[attr-defined]  # run by anygpt.cli before parsing
prepare.cli_epilog = describe  # type: ignore[attr-defined]  # shown by `anygpt prepare --help`
