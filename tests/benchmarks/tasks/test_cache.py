"""The prediction cache's key: file contents (hashed once per (size, mtime)), tokenizer files, the data manifest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.tasks.cache import FileHashes, cache_key, manifest, model_files


def test_file_digests_are_content_hashes_remembered_per_size_and_mtime(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    store = tmp_path / "hashes.json"
    hashes = FileHashes(store)
    first = hashes.digest(weights)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest() and hashes.hashed == [str(weights.resolve())]
    hashes.save()
    again = FileHashes(store)
    assert again.digest(weights) == first and again.hashed == []  # remembered: not read again
    # rewritten with the same size (a retrained export): a new mtime means it is hashed again
    stat = weights.stat()
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    changed = FileHashes(store)
    assert changed.digest(weights) == hashlib.sha256(b"b" * 1000).hexdigest() and changed.hashed
    # the same bytes elsewhere: the same digest (the key does not depend on where the checkpoint lives)
    moved = tmp_path / "elsewhere.safetensors"
    moved.write_bytes(b"b" * 1000)
    assert changed.digest(moved) == changed.digest(weights)
    store.write_text("{cut short")  # a store broken by an interruption is ignored
    assert FileHashes(store).digest(weights) == changed.digest(weights)


def test_model_files_include_tokenizers_and_the_files_their_configs_name(tmp_path):
    ckpt = tmp_path / "export"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"w")
    (ckpt / "sub" / "tokenizer.json").write_text("{}")
    storm = tmp_path / "soundstorm"
    storm.mkdir()
    (storm / "model.safetensors").write_bytes(b"s")
    speech = tmp_path / "speech"
    speech.mkdir()
    (speech / "config.json").write_text(json.dumps({"init_args": {"soundstorm": str(storm), "steps": 3}}))
    (speech / "model.safetensors").write_bytes(b"t")
    files = model_files(ckpt, [str(speech)])
    names = {f.relative_to(tmp_path.resolve()).as_posix() for f in files}
    assert names == {"export/model.safetensors", "export/sub/tokenizer.json", "speech/config.json",
                     "speech/model.safetensors", "soundstorm/model.safetensors"}
    shipped = model_files(ckpt, [None])  # a modality on its default weights: the shipped tokenizers count
    assert any("assets/tokenizers" in f.as_posix() for f in shipped)


@dataclass
class Record:
    key: str
    path: Path
    text: str


def test_manifest_hashes_each_items_record_and_file_content(tmp_path):
    audio = tmp_path / "a.flac"
    audio.write_bytes(b"1")
    hashes = FileHashes()
    one = manifest([Record("u1", audio, "hello")], hashes)
    assert one[0]["files"] == {str(audio): hashlib.sha256(b"1").hexdigest()}
    assert one[0]["record"]["text"] == "hello"
    other_text = manifest([Record("u1", audio, "hello!")], hashes)
    assert cache_key(one[0]) != cache_key(other_text[0])
    stat = audio.stat()
    audio.write_bytes(b"2")
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache_key(manifest([Record("u1", audio, "hello")], FileHashes())[0]) != cache_key(one[0])
