"""Token shards: webdataset tar files of ``json`` metadata + one ``.npy`` of codes per media item.

One sample in a shard::

    000042.json         {"task": "caption", "text": "...", "media": {"image0": "image"}, "source": "coco", ...}
    000042.image0.npy   int16/int32 codes in the modality's native layout (image [32], speech [T], music [4, T])

Templates are applied when the data is read (`anygpt.prompts`), so a template change needs no re-tokenization.
A directory of shards carries ``manifest.json`` (shards, sample counts, modalities, vocabulary identity).

Reading never dies on bad data: a truncated shard ends early, a corrupt sample or one whose codes fall outside the
vocabulary is skipped; every case is counted in `ReaderStats` and announced with a warning naming the shard and key.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import math
import os
import random
import tarfile
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from webdataset import TarWriter
from webdataset.tariterators import group_by_keys, tar_file_iterator

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
CODE_DTYPES = (np.int16, np.int32, np.int64, np.uint16)


# ----------------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------------
class ShardWriter:
    """Write samples into ``{directory}/{prefix}-000000.tar, ...``, starting a new shard at ``maxcount`` samples or
    ``maxsize`` bytes. Each shard is written to ``*.tar.tmp`` and renamed when complete, so a crash never leaves a
    half-written ``.tar`` behind; `close` writes ``manifest.json`` the same way.

    Args:
        directory: output folder (created).
        prefix: shard file name prefix.
        maxcount / maxsize: shard size limits (samples / bytes).
        vocab_info: identity of the vocabulary the codes were made for (text tokenizer, modality code-book sizes);
            stored in the manifest so a reader can refuse shards made for another layout.
        start_index: number of the first shard (resuming a partially written set).
        manifest: update ``manifest.json`` on `close`; parallel writers (``anygpt prepare``) turn it off and write one
            manifest at the end with `write_manifest`.
    """

    def __init__(self, directory: str | Path, prefix: str = "shard", maxcount: int = 10_000, maxsize: float = 1e9,
                 vocab_info: Mapping[str, Any] | None = None, start_index: int = 0, manifest: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix, self.maxcount, self.maxsize = prefix, maxcount, maxsize
        self.vocab_info = dict(vocab_info or {})
        self.index = start_index
        self.manifest = manifest
        self.shards: list[dict[str, Any]] = []
        self.modalities: Counter[str] = Counter()
        self._writer: TarWriter | None = None
        self._stream: io.BufferedWriter | None = None
        self._count = 0
        self._size = 0

    def _open(self) -> None:
        self._path = self.directory / f"{self.prefix}-{self.index:06d}.tar"
        self._stream = open(self._path.with_suffix(".tar.tmp"), "wb")
        self._writer = TarWriter(self._stream)
        self._count = self._size = 0

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._writer.close()  # closes the stream too
        os.replace(self._path.with_suffix(".tar.tmp"), self._path)
        self.shards.append({"name": self._path.name, "samples": self._count, "bytes": self._path.stat().st_size})
        self._writer = self._stream = None
        self.index += 1

    def write(self, key: str, meta: Mapping[str, Any], codes: Mapping[str, np.ndarray] | None = None) -> None:
        """Add one sample. ``meta["media"]`` (name -> modality) is filled from ``codes`` if absent; names must match."""
        codes = dict(codes or {})
        meta = dict(meta)
        media = dict(meta.get("media") or {})
        if set(media) != set(codes):
            raise ValueError(f"sample {key!r}: media {sorted(media)} and code arrays {sorted(codes)} must name the "
                             "same items (meta['media'] maps each .npy name to its modality)")
        sample: dict[str, Any] = {"__key__": key, "json": json.dumps(meta, ensure_ascii=False).encode("utf-8")}
        for name, array in codes.items():
            array = np.asarray(array)
            if array.dtype not in CODE_DTYPES:
                raise TypeError(f"sample {key!r}, {name}: codes must be integers (int16/int32), got {array.dtype}")
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            sample[f"{name}.npy"] = buffer.getvalue()
            self.modalities[media[name]] += 1
        size = sum(len(v) for k, v in sample.items() if k != "__key__")
        if self._writer is None or self._count >= self.maxcount or (self._count and self._size + size > self.maxsize):
            self._finish()
            self._open()
        assert self._writer is not None
        self._writer.write(sample)
        self._count += 1
        self._size += size

    def close(self) -> list[Path]:
        """Finish the last shard and write the manifest; returns the shard paths."""
        self._finish()
        if self.manifest:
            manifest_path = self.directory / MANIFEST
            existing = read_manifest(self.directory) if manifest_path.exists() else {}
            names = {x["name"] for x in self.shards}
            shards = [s for s in existing.get("shards", []) if s["name"] not in names] + self.shards
            modalities = Counter(existing.get("modalities", {}))
            modalities.update(self.modalities)
            write_manifest(self.directory, shards, dict(modalities), self.vocab_info)
        return [self.directory / s["name"] for s in self.shards]

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_manifest(directory: str | Path, shards: list[dict[str, Any]], modalities: Mapping[str, int],
                   vocab_info: Mapping[str, Any]) -> Path:
    """Atomically write ``manifest.json``: shards (name, samples, bytes) sorted by name, totals and vocab identity."""
    shards = sorted(shards, key=lambda s: s["name"])
    manifest = {"format_version": FORMAT_VERSION, "shards": shards, "num_samples": sum(s["samples"] for s in shards),
                "modalities": dict(modalities), "vocab": dict(vocab_info)}
    path = Path(directory) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: is {directory} a shard directory written by ShardWriter?") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); rewrite it by re-running the preparation") from None


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    """One decoded sample: its metadata and the native codes of each media item."""

    key: str
    meta: dict[str, Any]
    codes: dict[str, np.ndarray]
    shard: str = ""

    @property
    def media(self) -> dict[str, str]:
        """Media item name -> modality name."""
        return dict(self.meta.get("media") or {})


@dataclass
class ReaderStats:
    """What a reader saw and what it skipped (aggregate over workers by adding)."""

    samples: int = 0
    corrupt: int = 0
    out_of_range: int = 0
    truncated_shards: int = 0
    truncated_samples: int = 0  # rendered samples longer than max_length, cut (counted by the data module)
    messages: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.corrupt + self.out_of_range

    def note(self, message: str) -> None:
        if len(self.messages) < 100:  # keep the first ones for reports; warnings show the rest as they happen
            self.messages.append(message)
        warnings.warn(message, stacklevel=3)

    def note_truncation(self, message: str, max_length: int) -> None:
        """Count a sample cut to ``max_length``; warn for the first few, then at 10, 100, 1000, ... in all.

        Truncation is routine for long dialogues, so one warning per sample would bury everything else."""
        self.truncated_samples += 1
        count = self.truncated_samples
        if count <= 3:
            self.note(message)
        elif count >= 10 and math.log10(count).is_integer():
            self.note(f"{count} samples truncated to max_length {max_length} so far (e.g. {message}); raise "
                      "max_length to keep them whole")

    def state_dict(self) -> dict[str, int]:
        return {"samples": self.samples, "corrupt": self.corrupt, "out_of_range": self.out_of_range,
                "truncated_shards": self.truncated_shards, "truncated_samples": self.truncated_samples}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        for name, value in state.items():
            setattr(self, name, int(value))


def iter_raw(url: str | Path, stats: ReaderStats | None = None) -> Iterator[dict[str, Any]]:
    """Raw samples (``__key__`` + bytes per extension) of one tar shard, via webdataset's tar iterators.

    A shard that ends early (truncated copy, interrupted download) stops the iteration with a counted warning.
    """
    stats = stats if stats is not None else ReaderStats()
    url = str(url)

    def reraise(exn: Exception) -> bool:
        raise exn

    try:
        with open(url, "rb") as stream:
            files = ({**f, "__url__": url} for f in tar_file_iterator(stream, handler=reraise))
            yield from group_by_keys(files, handler=reraise)
    except FileNotFoundError:
        raise FileNotFoundError(f"shard {url} does not exist; check the source's shard paths") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        stats.truncated_shards += 1
        stats.note(f"shard {url} is truncated or unreadable ({type(err).__name__}: {err}); the rest of it is skipped. "
                   "Re-create it with ShardWriter or remove it from the source.")


@functools.lru_cache(maxsize=1024)
def _npy_header(header: bytes) -> tuple[np.dtype, bool, tuple[int, ...]]:
    fields = ast.literal_eval(header.decode("latin1"))
    if not isinstance(fields, dict) or not {"descr", "fortran_order", "shape"} <= set(fields):
        raise ValueError(f"not a .npy header: {header[:80]!r}")
    if np.dtype(fields["descr"]).hasobject:
        raise ValueError("object arrays cannot be loaded without pickle")
    return np.dtype(fields["descr"]), bool(fields["fortran_order"]), tuple(int(n) for n in fields["shape"])


def load_npy(data: bytes) -> np.ndarray:
    """A ``.npy`` file's array, as ``np.load(..., allow_pickle=False)`` reads it, with the header parsed once per
    distinct header: a shard's samples share a few shapes, and parsing is most of the cost of a small array."""
    if len(data) < 10 or data[:6] != b"\x93NUMPY":
        raise ValueError("not a .npy file (bad magic)")
    start = 10 if data[6] == 1 else 12  # version 1 headers give their length in 2 bytes, later ones in 4
    end = start + int.from_bytes(data[8:start], "little")
    dtype, fortran, shape = _npy_header(bytes(data[start:end]))
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=end)
    return array.reshape(shape, order="F" if fortran else "C").copy(order="K")


def decode(raw: Mapping[str, Any], stats: ReaderStats | None = None,
           codebook_sizes: Mapping[str, int] | None = None) -> Sample | None:
    """Raw sample -> `Sample`, or None (counted in ``stats``) when it is corrupt or its codes do not fit the vocabulary.

    Args:
        codebook_sizes: modality -> number of codes; codes outside ``[0, size)`` or of an unknown modality skip the
            sample. None skips the range check.
    """
    stats = stats if stats is not None else ReaderStats()
    key, url = raw.get("__key__", "?"), raw.get("__url__", "?")
    try:
        meta = json.loads(raw["json"])
        media = dict(meta.get("media") or {})
        codes = {}
        for name in media:
            array = load_npy(raw[f"{name}.npy"])
            if array.dtype not in CODE_DTYPES:
                raise TypeError(f"{name}.npy holds {array.dtype}, not integer codes")
            codes[name] = array
    except (KeyError, ValueError, TypeError, OSError, json.JSONDecodeError) as err:
        stats.corrupt += 1
        stats.note(f"shard {url}, sample {key}: corrupt ({type(err).__name__}: {err}); skipped")
        return None
    if codebook_sizes is not None:
        for name, modality in media.items():
            size = codebook_sizes.get(modality)
            array = codes[name]
            if size is None:
                stats.out_of_range += 1
                stats.note(f"shard {url}, sample {key}: media {name!r} has modality {modality!r}, which is not in the "
                           f"vocabulary {sorted(codebook_sizes)}; skipped")
                return None
            if array.size and (int(array.min()) < 0 or int(array.max()) >= size):
                stats.out_of_range += 1
                stats.note(f"shard {url}, sample {key}: {name}.npy codes span [{int(array.min())}, {int(array.max())}] "
                           f"but {modality} has {size} codes; skipped (were the shards made with another tokenizer?)")
                return None
    stats.samples += 1
    return Sample(key=key, meta=meta, codes=codes, shard=url)


def read_shard(url: str | Path, stats: ReaderStats | None = None, codebook_sizes: Mapping[str, int] | None = None,
               skip: int = 0) -> Iterator[Sample]:
    """Decoded samples of one shard, skipping the first ``skip`` raw samples (resuming inside a shard)."""
    for index, raw in enumerate(iter_raw(url, stats)):
        if index < skip:
            continue
        sample = decode(raw, stats, codebook_sizes)
        if sample is not None:
            yield sample


def expand_shards(spec: str | Path | list[str | Path]) -> list[str]:
    """Shard paths of a source: a directory (its ``*.tar``), a glob (``data/shards/coco/*.tar``) or a list of them.

    Raises FileNotFoundError naming the pattern when nothing matches.
    """
    import glob

    specs = spec if isinstance(spec, list) else [spec]
    urls: list[str] = []
    for item in specs:
        item = str(item)
        if os.path.isdir(item):
            found = sorted(glob.glob(os.path.join(item, "*.tar")))
        else:
            found = sorted(glob.glob(item, recursive=True))
        if not found:
            raise FileNotFoundError(f"No shards found for {item!r}: give a directory of .tar shards or a glob such as "
                                    "data/shards/coco/*.tar (write them with `anygpt prepare` or ShardWriter)")
        urls.extend(found)
    return urls


# ----------------------------------------------------------------------------------------------------------------------
# One source's stream for one reader: shard order per pass, split among readers, shuffle buffer, exact resume
# ----------------------------------------------------------------------------------------------------------------------
class SampleStream:
    """Decoded samples of one source as seen by one reader (a rank's loader worker), shuffled and resumable.

    Every pass over the source lists its shards in an order drawn from ``seed`` and the pass number (the same order on
    every reader) and splits it among the ``readers``: with at least as many shards as readers each reader takes
    every ``readers``-th shard; with fewer, each shard is shared by a few readers (reader ``r`` reads shard
    ``r % shards`` and keeps one residue class of its samples), so no reader reads more than its share of shards.
    Either way a pass hands each sample to exactly one reader. Samples then go through a buffer of ``shuffle_buffer``
    samples from which they leave in random order (webdataset's ``shuffle``), so consecutive samples rarely share a
    shard.

    The position (`state_dict`) is a few integers plus the buffer as (shard, sample index) references, never the
    samples themselves: restoring it re-reads the referenced samples and continues exactly where the stream stopped.

    Args:
        urls: the source's shards (sorted; indices into this list appear in the state).
        seed: the stream's identity (e.g. ``"{seed}-{epoch}-{source}"``); readers of one stream share it.
        reader / readers: this reader's index and how many there are (ranks x loader workers).
        shuffle_buffer: samples held for shuffling (0 or 1: samples leave in shard order).
        shuffle_shards: draw a new shard order every pass (off: sorted order, as for validation).
        cycle: start the next pass when one ends (the training stream is endless); off: one pass, then stop.
        codebook_sizes / stats: as `decode`.
        name: the source's name in messages.
    """

    max_bad_in_a_row = 1000  # a source that yields nothing usable stops the run instead of spinning

    def __init__(self, urls: list[str], seed: str, reader: int = 0, readers: int = 1, shuffle_buffer: int = 0,
                 shuffle_shards: bool = True, cycle: bool = True, codebook_sizes: Mapping[str, int] | None = None,
                 stats: ReaderStats | None = None, name: str = "") -> None:
        if not urls:
            raise ValueError(f"source {name!r} has no shards")
        if not 0 <= reader < readers:
            raise ValueError(f"reader {reader} is not in [0, {readers})")
        self.urls, self.seed, self.reader, self.readers = list(urls), str(seed), reader, readers
        self.shuffle_buffer, self.shuffle_shards, self.cycle = max(0, int(shuffle_buffer)), shuffle_shards, cycle
        self.codebook_sizes = codebook_sizes
        self.stats = stats if stats is not None else ReaderStats()
        self.name = name or str(urls[0])
        self.pass_index = 0  # passes started
        self.cursor = 0  # position in this reader's shard list of the pass
        self.consumed = 0  # raw samples read from the current shard
        self.refs: list[int] = []  # the buffer as flat (url index, raw index) pairs, in buffer order
        self.rng = random.Random(f"{self.seed}-buffer-{reader}-of-{readers}")
        self.exhausted = False
        self.read_all = False  # fallback when a pass holds fewer samples than readers
        self._buffer: list[Sample] | None = []  # None: to be re-read from `refs` (after load_state_dict)
        self._open: tuple[int, int, Iterator[dict[str, Any]]] | None = None  # (url index, next raw index, iterator)
        self._plan: tuple[tuple[int, bool], list[tuple[int, int]]] | None = None  # the current pass's shards

    # -- the plan of a pass --------------------------------------------------------------------------------------------
    def pass_shards(self, pass_index: int) -> list[tuple[int, int]]:
        """This reader's shards in pass ``pass_index``: (url index, position in the pass's order) pairs."""
        key = (pass_index, self.read_all)
        if self._plan is None or self._plan[0] != key:
            self._plan = (key, self._draw_pass(pass_index))
        return self._plan[1]

    def _draw_pass(self, pass_index: int) -> list[tuple[int, int]]:
        order = list(range(len(self.urls)))
        if self.shuffle_shards:
            random.Random(f"{self.seed}-shards-pass-{pass_index}").shuffle(order)
        if self.read_all:
            return list(enumerate(order))
        if len(order) >= self.readers:
            return [(url, pos) for pos, url in list(enumerate(order))[self.reader::self.readers]]
        position = self.reader % len(order)  # fewer shards than readers: each shard shared by a few readers
        return [(order[position], position)]

    def _keeps(self, position: int, raw_index: int) -> bool:
        """With fewer shards (``n``) than readers, the shard at ``position`` is shared by the readers ``r`` with
        ``r % n == position``; each keeps the samples whose index falls in its residue class."""
        shards = len(self.urls)
        if self.read_all or shards >= self.readers:
            return True
        sharing = self.readers // shards + (position < self.readers % shards)
        return raw_index % sharing == self.reader // shards

    # -- reading -------------------------------------------------------------------------------------------------------
    def _next_raw(self) -> tuple[int, int, dict[str, Any]] | None:
        """The next raw sample this reader keeps, moving through shards and passes; None when a pass ends and
        ``cycle`` is off."""
        empty_passes = 0  # passes that ended in this call without giving this reader a sample
        kept_this_pass = seen_this_pass = 0
        while True:
            shards = self.pass_shards(self.pass_index)
            if self.cursor >= len(shards):  # the pass is over
                if not self.cycle:
                    return None
                empty_passes = empty_passes + 1 if not kept_this_pass else 0
                if empty_passes >= 2:  # a whole pass (the second) was read here and gave this reader nothing
                    if not seen_this_pass:
                        raise RuntimeError(f"source {self.name}: no readable sample in a whole pass over its "
                                           f"{len(self.urls)} shard(s) (first: {self.urls[0]}); check its shards")
                    self.read_all = True
                    empty_passes = 0
                    warnings.warn(f"source {self.name}: a pass holds fewer samples than the {self.readers} readers; "
                                  "every reader now reads all of it (samples repeat across readers)", stacklevel=3)
                self.pass_index += 1
                self.cursor = self.consumed = 0
                kept_this_pass = seen_this_pass = 0
                self._open = None
                continue
            url, position = shards[self.cursor]
            if self._open is None or self._open[0] != url or self._open[1] != self.consumed:
                iterator = iter_raw(self.urls[url], self.stats)
                for _ in range(self.consumed):  # resume inside the shard
                    next(iterator, None)
                self._open = (url, self.consumed, iterator)
            raw = next(self._open[2], None)
            if raw is None:
                self.cursor += 1
                self.consumed = 0
                self._open = None
                continue
            index = self.consumed
            self.consumed += 1
            self._open = (url, self.consumed, self._open[2])
            seen_this_pass += 1
            if self._keeps(position, index):
                kept_this_pass += 1
                return url, index, raw

    def _next_decoded(self) -> tuple[int, int, Sample] | None:
        bad = 0
        while True:
            item = self._next_raw()
            if item is None:
                return None
            url, index, raw = item
            sample = decode(raw, self.stats, self.codebook_sizes)
            if sample is not None:
                return url, index, sample
            bad += 1
            if bad >= self.max_bad_in_a_row:
                raise RuntimeError(f"source {self.name}: {bad} unusable samples in a row (last in {self.urls[url]}); "
                                   "are these shards made for this vocabulary? See the warnings above.")

    def _restore_buffer(self) -> list[Sample]:
        """Re-read the samples the saved buffer referenced (each shard once, up to its last referenced sample)."""
        pairs = list(zip(self.refs[0::2], self.refs[1::2], strict=True))
        wanted: dict[int, set[int]] = {}
        for url, index in pairs:
            wanted.setdefault(url, set()).add(index)
        found: dict[tuple[int, int], Sample] = {}
        for url, indices in wanted.items():
            last = max(indices)
            for index, raw in enumerate(iter_raw(self.urls[url], ReaderStats())):
                if index in indices:
                    sample = decode(raw, ReaderStats(), self.codebook_sizes)
                    if sample is not None:
                        found[url, index] = sample
                if index >= last:
                    break
        missing = [p for p in pairs if p not in found]
        if missing:
            first = f"{self.urls[missing[0][0]]} sample {missing[0][1]}"
            self.stats.note(f"source {self.name}: {len(missing)} buffered sample(s) of the saved position are no "
                            f"longer readable (first: {first}); the shards changed since the checkpoint, so the "
                            "resumed stream differs")
        kept = [p for p in pairs if p in found]
        self.refs = [x for p in kept for x in p]
        return [found[p] for p in kept]

    def __next__(self) -> Sample:
        if self._buffer is None:
            self._buffer = self._restore_buffer()
        buffer, size = self._buffer, max(1, self.shuffle_buffer)
        while not self.exhausted and len(buffer) < size:
            item = self._next_decoded()
            if item is None:
                self.exhausted = True
                break
            url, index, sample = item
            buffer.append(sample)
            self.refs.extend((url, index))
        if not buffer:
            raise StopIteration
        pick = self.rng.randrange(len(buffer)) if size > 1 else 0
        last = len(buffer) - 1
        buffer[pick], buffer[last] = buffer[last], buffer[pick]
        i, j, refs = 2 * pick, 2 * last, self.refs
        refs[i], refs[i + 1], refs[j], refs[j + 1] = refs[j], refs[j + 1], refs[i], refs[i + 1]
        del self.refs[-2:]
        return buffer.pop()

    def __iter__(self) -> SampleStream:
        return self

    # -- state ---------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"pass": self.pass_index, "cursor": self.cursor, "consumed": self.consumed, "refs": list(self.refs),
                "rng": [version, list(internal), gauss], "exhausted": self.exhausted, "read_all": self.read_all}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pass_index, self.cursor, self.consumed = int(state["pass"]), int(state["cursor"]), int(state["consumed"])
        self.refs = [int(x) for x in state["refs"]]
        if max(self.refs[0::2], default=-1) >= len(self.urls):
            raise ValueError(f"source {self.name}: the saved position names shard {max(self.refs[0::2])} but the "
                             f"source has {len(self.urls)} shards now; resume with the shards it was saved with")
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.exhausted, self.read_all = bool(state["exhausted"]), bool(state["read_all"])
        self._buffer = None if self.refs else []
        self._open = None
