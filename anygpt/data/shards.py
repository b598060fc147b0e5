"""Token shards: webdataset tar files of ``json`` metadata + one ``.npy`` of codes per media item.

One sample in a shard::

    000042.json         {"kind": "pair", "text": "...", "media": {"image0": "image"}, "source": "coco", "id": 42}
    000042.image0.npy   int16/int32 codes in the modality's native layout (image [32], speech [T], music [4, T])

The json is a `ShardSample` (`anygpt.data.schema`). Templates are applied when the data is read (`anygpt.prompts`),
so a template change needs no re-tokenization.
A directory of shards carries ``manifest.json`` (shards, sample counts, modalities, vocabulary identity).

Reading never dies on bad data: a truncated shard ends early, a corrupt sample or one whose codes fall outside the
vocabulary is skipped; every case is counted in `ReaderStats` and announced with a warning naming the shard and key.
"""

from __future__ import annotations

import ast
import functools
import glob
import io
import json
import math
import os
import tarfile
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from webdataset import TarWriter
from webdataset.tariterators import group_by_keys, tar_file_iterator

from anygpt.data.schema import ShardSample

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
    return write_json_atomic(Path(directory) / MANIFEST, manifest, indent=2)


def write_json_atomic(path: Path, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as json to ``path`` through a temporary file, so a reader never sees half of it."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, ensure_ascii=False))
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
           codebook_sizes: Mapping[str, int] | None = None) -> ShardSample | None:
    """Raw sample -> `ShardSample`, or None (counted in ``stats``) when it is corrupt or its codes do not fit the
    vocabulary.

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
        sample = ShardSample.from_json(meta, key, codes, url)
    except (KeyError, ValueError, TypeError, AttributeError, OSError, json.JSONDecodeError) as err:
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
    return sample


def read_shard(url: str | Path, stats: ReaderStats | None = None, codebook_sizes: Mapping[str, int] | None = None,
               skip: int = 0) -> Iterator[ShardSample]:
    """Decoded samples of one shard, skipping the first ``skip`` raw samples (resuming inside a shard)."""
    for raw in islice(iter_raw(url, stats), skip, None):
        sample = decode(raw, stats, codebook_sizes)
        if sample is not None:
            yield sample


def expand_shards(spec: str | Path | list[str | Path]) -> list[str]:
    """Shard paths of a source: a directory (its ``*.tar``), a glob (``data/shards/coco/*.tar``) or a list of them.

    Raises FileNotFoundError naming the pattern when nothing matches.
    """
    urls: list[str] = []
    for item in spec if isinstance(spec, list) else [spec]:
        item = str(item)
        found = sorted(glob.glob(os.path.join(item, "*.tar") if os.path.isdir(item) else item, recursive=True))
        if not found:
            raise FileNotFoundError(f"No shards found for {item!r}: give a directory of .tar shards or a glob such as "
                                    "data/shards/coco/*.tar (write them with `anygpt prepare` or ShardWriter)")
        urls.extend(found)
    return urls
