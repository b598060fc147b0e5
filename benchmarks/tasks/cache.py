"""The prediction cache of a benchmark run, keyed on content: what the model *is*, what it was asked, and on what data.

A rerun reuses earlier predictions only when its key is identical: the SHA-256 of every weight and tokenizer file
(never the checkpoint's path: retraining into the same folder is a new model), every task option that can change a
prediction, and the data manifest (the evaluated items' records and the content hash of each input file they name).

Hashing is by content. Large files are read once: a digest is remembered per file with the file's (size, mtime) and
reused while both are unchanged, so the second run of a 14 GB checkpoint costs a few ``stat`` calls, while a rewritten
file (new mtime) is hashed again even when its size did not change.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from anygpt import hub
from anygpt.assets import SCHEME, asset_path, assets_dir

SHIPPED_TOKENIZERS = assets_dir() / "tokenizers"


class FileHashes:
    """SHA-256 of files, remembered in a JSON file keyed by (absolute path, size, mtime_ns)."""

    def __init__(self, store: str | Path | None = None) -> None:
        self.store = Path(store) if store is not None else None
        self.known: dict[str, list] = {}
        if self.store is not None and self.store.is_file():
            try:
                self.known = json.loads(self.store.read_text())
            except ValueError:  # a store cut short by an interruption: start afresh
                self.known = {}
        self.hashed: list[str] = []  # files actually read in this process (the rest came from the store)

    def digest(self, path: str | Path) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        key = str(path)
        seen = self.known.get(key)
        if seen is not None and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns:
            return seen[2]
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        self.known[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self.hashed.append(key)
        return digest

    def save(self) -> None:
        if self.store is not None and self.hashed:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.store.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.known))
            os.replace(tmp, self.store)


def files_under(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else every file below it (sorted, so the key does not depend on listing
    order)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def _leaves(value: Any) -> Iterator[Any]:
    """The values inside nested dicts, lists and tuples."""
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _named_paths(json_file: Path) -> list[Path]:
    """Existing files/folders that a tokenizer config names (e.g. the speech tokenizer's SoundStorm folder)."""
    try:
        config = json.loads(json_file.read_text())
    except (OSError, ValueError):
        return []
    found: list[Path] = []
    for value in _leaves(config):
        if not (isinstance(value, str) and value.strip(". /")):
            continue
        candidates = [asset_path(value)] if value.startswith(SCHEME) else [
            json_file.parent / value, SHIPPED_TOKENIZERS / value]
        if "/" in value:  # a relative path with folders may be relative to where the run starts
            candidates.append(Path(value))
        for candidate in candidates:
            try:
                if candidate.exists():
                    found.append(candidate)
            except (OSError, ValueError):  # not a possible path name (too long, NUL bytes)
                continue
    return found


def model_files(ckpt: str | Path, tokenizer_paths: Iterable[str | Path | None]) -> list[Path]:
    """Every file that defines the model: the checkpoint, each tokenizer's folder or file (the shipped tokenizers when
    one uses its default weights), and the files those tokenizer configs name."""
    ckpt = hub.local(ckpt, "checkpoint")  # a hub id: its cached snapshot
    roots = [ckpt]
    for path in tokenizer_paths:
        roots.append(hub.local(path, "tokenizer") if path else SHIPPED_TOKENIZERS)
    files: list[Path] = []
    for root in roots:
        found = files_under(root)
        for f in list(found):
            if f.suffix == ".json" and root != ckpt:
                for named in _named_paths(f):
                    found += files_under(named)
        files += found
    return sorted({f.resolve() for f in files})


def manifest(records: Iterable[Any], hashes: FileHashes) -> list[Any]:
    """The evaluated items as JSON-able records, with the content digest of every file a record names."""
    out = []
    for record in records:
        data = asdict(record) if is_dataclass(record) else record
        paths = sorted({str(p) for p in _leaves(data) if isinstance(p, Path) and p.is_file()})
        out.append({"record": json.loads(json.dumps(data, default=str)),
                    "files": {p: hashes.digest(p) for p in paths}})
    return out


def cache_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (task, options, model file digests, data manifest)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
