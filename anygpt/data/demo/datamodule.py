"""`DemoDataModule`: the whole demo data path behind one config entry.

On first use it builds what is missing, each step resumable and skipped when already done: the demo corpus
(`build_demo_corpus`) and a byte-level BPE text tokenizer trained on the corpus's train and val text when it is made
(the vocabulary needs them), and in `prepare_data` token shards made by ``anygpt prepare`` with the tiny tokenizers
shipped in ``anygpt/assets/tokenizers``. Then it trains like any `AnyGPTDataModule` on a mixture of image-caption,
speech-transcript and music-caption pairs (both directions) and the any-to-any dialogues (loss on the assistant turns).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anygpt.assets import asset_path
from anygpt.data.datamodule import AnyGPTDataModule, Source
from anygpt.data.demo.build import LIBRISPEECH_SPLITS, build_demo_corpus
from anygpt.data.prepare import AnyInstruct, CocoKarpathy, LibriSpeech, MusicCaps, prepare
from anygpt.data.sources.anyinstruct import read_anyinstruct
from anygpt.data.sources.base import SkipReport
from anygpt.data.sources.coco import read_coco_karpathy
from anygpt.data.sources.librispeech import read_librispeech
from anygpt.data.sources.musiccaps import read_musiccaps
from anygpt.modalities.codec import Modality
from anygpt.modalities.registry import TokenizerRef, media_pattern
from anygpt.prompts import TEXT2X_INSTRUCTIONS, X2TEXT_INSTRUCTIONS
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import SPECIAL_TOKENS

DEFAULT_WEIGHTS = {"image": 0.3, "speech": 0.3, "music": 0.2, "dialogue": 0.2}


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One process at a time builds the demo data (other ranks wait, then find it done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_tokenizers() -> dict[str, str]:
    """The tiny tokenizers shipped with anygpt, by modality."""
    return {name: str(asset_path(f"anygpt-assets:tokenizers/{name}")) for name in ("image", "speech", "music")}


TEXT_SPLITS = ("train", "val")  # the BPE never reads test text (captions, transcripts, dialogues of the test split)


def corpus_texts(corpus: Path, splits: tuple[str, ...] = TEXT_SPLITS) -> Iterator[str]:
    """The texts of ``splits`` of the corpus (captions, transcripts, dialogues) plus the template strings, for the
    BPE. VCTK sentences are test data only and never included."""
    report = SkipReport()
    for rec in read_coco_karpathy(corpus / "coco" / "dataset_coco.json", split=splits, report=report):
        yield from rec.captions
    for split in splits:
        for utt in read_librispeech(corpus / "librispeech", LIBRISPEECH_SPLITS[split], report=report,
                                            with_alignment=False):
            yield utt.text.lower()
    for clip in read_musiccaps(corpus / "musiccaps" / "musiccaps.csv", split=splits, report=report):
        yield clip.caption
    for split in splits:
        for dialogue in read_anyinstruct(corpus / "anyinstruct" / f"{split}.jsonl", report=report,
                                                 check_files=False, root=corpus):
            for user, assistant in dialogue.turns:
                yield media_pattern().sub(" ", user)
                if assistant:
                    yield media_pattern().sub(" ", assistant)
    for pool in (X2TEXT_INSTRUCTIONS, TEXT2X_INSTRUCTIONS):
        for phrasings in pool.values():
            yield from phrasings
    yield " ".join(SPECIAL_TOKENS) + " This is input:"


def _fingerprint(folder: str | Path) -> str:
    """sha256 over a tokenizer folder's files (names and bytes): what its codes depend on. A reference that is not a
    local path (a registered name) is taken as it is."""
    folder = Path(folder)
    if not folder.exists():
        return str(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _stale(stamp: Path, inputs: dict[str, Any]) -> bool:
    """Whether ``stamp`` (written beside a derived artifact) records other inputs than ``inputs``."""
    try:
        return json.loads(stamp.read_text()) != inputs
    except (OSError, ValueError):
        return True


def build_demo_text(root: str | Path = "data/demo", scale: float = 1.0, seed: int = 0, text_vocab_size: int = 2048,
                    corpus_workers: int | None = None) -> dict[str, Any]:
    """Corpus -> text tokenizer under ``root`` (what the vocabulary needs); each step skipped when done.

    The corpus is built in ``root`` itself (the benchmarks' default ``--data``), the BPE in ``root/text_tokenizer``.
    Each derived artifact records what it was made from (the corpus' content hash, the BPE settings) and is rebuilt
    when any of it changed."""
    root = Path(root)
    with _exclusive(root / ".build.lock"):
        manifest = build_demo_corpus(root, seed=seed, scale=scale, workers=corpus_workers)
        text_dir = root / "text_tokenizer"
        text_inputs = {"corpus": manifest["content_hash"], "splits": list(TEXT_SPLITS), "vocab_size": text_vocab_size}
        if _stale(text_dir / "inputs.json", text_inputs) or not (text_dir / "tokenizer.json").exists():
            shutil.rmtree(text_dir, ignore_errors=True)
            print(f"[demo] training a {text_vocab_size}-id BPE text tokenizer on the corpus' train+val text -> "
                  f"{text_dir}")
            train_bpe_tokenizer(corpus_texts(root), text_vocab_size, text_dir)
            (text_dir / "inputs.json").write_text(json.dumps(text_inputs, indent=1))
    return {"corpus": str(root), "text_tokenizer": str(text_dir), "shards": str(root / "shards"),
            "content_hash": manifest["content_hash"], "corpus_counts": manifest.get("counts")}


def _shard_inputs(text: dict[str, Any], tokenizers: dict[str, str]) -> dict[str, Any]:
    """What the demo shards are made from: the corpus, the text tokenizer and the modality tokenizers' files."""
    return {"corpus": text["content_hash"], "text_tokenizer": _fingerprint(Path(text["text_tokenizer"]) /
                                                                            "tokenizer.json"),
            "tokenizers": {name: _fingerprint(path) for name, path in sorted(tokenizers.items())}}


def demo_shards_ready(text: dict[str, Any], tokenizers: dict[str, str]) -> bool:
    """Whether ``root/shards`` holds the shards of exactly this corpus, text tokenizer and modality tokenizers."""
    return not _stale(Path(text["shards"]) / "inputs.json", _shard_inputs(text, tokenizers))


def build_demo_shards(text: dict[str, Any], tokenizers: dict[str, str], prepare_workers: int = 2) -> None:
    """Token shards of the corpus by ``anygpt prepare`` in ``root/shards/<source>-<split>`` (``text``: what
    `build_demo_text` returned); rebuilt when the corpus or a tokenizer changed, resumed when interrupted."""
    corpus, shards = Path(text["corpus"]), Path(text["shards"])
    with _exclusive(corpus / ".build.lock"):
        inputs = _shard_inputs(text, tokenizers)
        if _stale(shards / "inputs.json", inputs):
            shutil.rmtree(shards, ignore_errors=True)
        sources = {}
        for split in ("train", "val"):
            sources[f"image-{split}"] = CocoKarpathy(str(corpus / "coco" / "dataset_coco.json"), split=split)
            sources[f"speech-{split}"] = LibriSpeech(str(corpus / "librispeech"), split=LIBRISPEECH_SPLITS[split])
            sources[f"music-{split}"] = MusicCaps(str(corpus / "musiccaps" / "musiccaps.csv"), split=split)
            # dialogues name the pair datasets' files (../coco/...): the corpus is their dataset root
            sources[f"dialogue-{split}"] = AnyInstruct(str(corpus / "anyinstruct" / f"{split}.jsonl"), root=str(corpus))
        prepare(sources, tokenizers, out=str(shards), chunk_size=500, batch_size=32, num_workers=prepare_workers,
                accelerator="cpu", devices=1, share_media=True)
        (shards / "inputs.json").write_text(json.dumps(inputs, indent=1))


class DemoDataModule(AnyGPTDataModule):
    """The bundled demo corpus as training data, built on first use.

    Args:
        root: where the corpus, text tokenizer and shards live (built when missing).
        scale: corpus size factor (1.0 = the full demo corpus; tests use ~0.02).
        corpus_seed: the corpus's seed.
        tokenizers: modality -> tokenizer checkpoint (default: the tiny ones shipped with anygpt).
        text_vocab_size: size of the BPE text vocabulary.
        weights: sampling rates of the sources ``image``, ``speech``, ``music`` (pairs) and ``dialogue``, per sample
            (a music or dialogue sample is ~4x longer than an image one, so rates and token shares differ).
        x2text_prob: per pair source, the probability of the media -> text direction (default 0.5 each).
        pair_train_on: loss on ``all`` tokens of a pair (the paper's pretraining) or on the ``assistant`` answer only
            (what a compute-starved run should spend its updates on: captions, transcripts, generated media).
        instruction_tokens: add ``<-Ins->``/``<-Res->``.
        Other arguments: as `AnyGPTDataModule`.
    """

    def __init__(self, root: str = "data/demo", scale: float = 1.0, corpus_seed: int = 0,
                 tokenizers: dict[str, str] | None = None, text_vocab_size: int = 2048,
                 weights: dict[str, float] | None = None, x2text_prob: dict[str, float] | None = None,
                 pair_train_on: str = "all",
                 max_length: int = 512, batch_size: int = 8,
                 batches_per_epoch: int = 200, val_batches: int = 5, num_workers: int = 0,
                 instruction_tokens: bool = False, prepare_workers: int = 2, seed: int = 0,
                 shuffle_buffer: int = 1000) -> None:
        weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        directions = {"image": 0.5, "speech": 0.5, "music": 0.5, **(x2text_prob or {})}
        unknown = (set(weights) | set(directions)) - set(DEFAULT_WEIGHTS)
        if pair_train_on not in ("all", "assistant"):
            raise ValueError(f"pair_train_on must be 'all' or 'assistant', got {pair_train_on!r}")
        if unknown:  # before the (minutes long) build
            raise ValueError(f"unknown demo source(s) {sorted(unknown)} in weights/x2text_prob; the demo sources are "
                             f"{', '.join(DEFAULT_WEIGHTS)}")
        # The vocabulary needs the corpus and its BPE now (the model's size is linked to it); the shards, minutes of
        # tokenization, are made in prepare_data (one process per node).
        self._text = build_demo_text(root, scale, corpus_seed, text_vocab_size)
        self._prepare_workers = prepare_workers
        self.tokenizer_refs = dict(tokenizers or default_tokenizers())
        modalities: list[Modality] = [TokenizerRef.of(self.tokenizer_refs[n]).load(n)
                                      for n in ("image", "speech", "music")]
        shards = Path(self._text["shards"])

        def sources(split: str) -> list[Source]:
            out = [Source(str(shards / f"{kind}-{split}"), weight=weights[kind], name=kind,
                          x2text_prob=directions[kind], train_on=pair_train_on)
                   for kind in ("image", "speech", "music")]
            out.append(Source(str(shards / f"dialogue-{split}"), weight=weights["dialogue"], name="dialogue",
                              train_on="assistant"))
            return [s for s in out if s.weight > 0]

        # The parent records its own arguments (text tokenizer, modalities, ...), which inference loading reads.
        super().__init__(text_tokenizer=self._text["text_tokenizer"], modalities=modalities, sources=sources("train"),
                         val_sources=sources("val"), max_length=max_length, batch_size=batch_size,
                         batches_per_epoch=batches_per_epoch, val_batches=val_batches, num_workers=num_workers,
                         instruction_tokens=instruction_tokens, seed=seed, shuffle_buffer=shuffle_buffer)
        self.hparams.update({"root": str(root), "scale": scale, "corpus_seed": corpus_seed,
                             "tokenizers": self.tokenizer_refs})

    def shards_ready(self) -> bool:
        return demo_shards_ready(self._text, self.tokenizer_refs)

    def prepare_data(self) -> None:
        """Tokenize the corpus into shards unless they are there (made from this corpus and these tokenizers)."""
        if not self.shards_ready():
            build_demo_shards(self._text, self.tokenizer_refs, self._prepare_workers)
        info = {key: self._text[key] for key in ("corpus", "text_tokenizer", "shards", "corpus_counts")}
        (Path(self._text["corpus"]) / "demo_data.json").write_text(json.dumps({**info, "tokenizers":
                                                                               self.tokenizer_refs}, indent=2))
