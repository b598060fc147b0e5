"""What every benchmark task shares: its options, data location, model loading, sharded prediction with a
content-keyed cache, bootstrap scoring against baselines, results.json and report.html.

A task is a `Task` subclass that keeps only what is its own: its options (``__init__``), how it reads its items
(`Task.read_items`), how it prompts the model (`Task.predict_batch`), and how it scores predictions, baselines and
the reference (`Task.score`). ``run`` does the rest:

1. start one process per device (`lightning.Fabric`); items are dealt out round-robin (``items[rank::world]``);
2. predict every item, appending to ``OUT/predictions/rank*.jsonl`` as it goes (media under ``OUT/media``); a rerun
   with the same cache key (`benchmarks.tasks.cache`) skips the items found there, so a long evaluation resumes;
3. score: the task turns per-item results into statistics (`benchmarks.stats`) for the model, each baseline and the
   reference (real pairs: the judge's ceiling); every value gets a 95% bootstrap interval and each model - baseline
   difference a paired one; "beats" is claimed only when that interval excludes zero;
4. write ``results.json`` (everything, with the command that reproduces it) and ``report.html`` (numbers, then inputs
   and outputs to look at and listen to).

Failed generations are never dropped: ``n_failed`` counts them and each task scores them as what they are (an empty
transcript is all deletions, a missing image or clip gets the metric's worst score).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import shutil
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm import tqdm

from anygpt.data.readers import DatasetError
from anygpt.htmlpage import HtmlPage
from anygpt.media import MEDIA_KINDS, MediaKind, kind_of_file
from anygpt.modalities.registry import media_kind_of
from benchmarks import stats
from benchmarks.tasks.cache import FileHashes, cache_key, manifest, model_files

DEMO_DIR = Path("data/demo")
TEMPLATES = ("base", "chat")
WORST_COSINE = -1.0  # the score of a missing image/clip/utterance under a cosine metric (CLIP, CLAP, speaker sim.)
# Options left out of the cache key: those that change how predictions are scored or shown, never the predictions;
# ``limit`` (each cached prediction carries the hash of its own item); and the paths whose *content* is hashed instead
NOT_IN_CACHE_KEY = frozenset({"out", "cache", "judge", "judge_options", "baseline", "report_samples", "resamples",
                              "publish", "speaker_encoder", "cider_tokenizer", "train_split", "trust_code", "compile",
                              "limit", "ckpt", "adapter", "tokenizers", "data"})


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------
def data_root(data: Path | str | None) -> Path:
    """``data`` as given, or the demo corpus (built into ``data/demo`` when it is not there yet)."""
    if data is not None:
        path = Path(data)
        if not path.exists():
            raise DatasetError(f"--data {path} does not exist: give the dataset folder/file, or leave --data out "
                               f"to use the demo corpus ({DEMO_DIR})")
        return path
    from anygpt.data.demo import build_demo_corpus
    from anygpt.data.demo.build import load_manifest

    if load_manifest(DEMO_DIR) is None:
        print(f"[benchmark] no --data given and no demo corpus in {DEMO_DIR.resolve()}: building it there "
              "(anygpt data demo --out data/demo), a few minutes")
        build_demo_corpus(DEMO_DIR)
    return DEMO_DIR


def locate(root: Path, candidates: Sequence[str], what: str, inside: str | None = None) -> Path:
    """The first of ``root`` itself or ``root/candidate`` that is the expected file, or (``inside`` given) the
    expected folder: one holding ``inside``."""
    tried = [root, *(root / c for c in candidates)]
    for path in tried:
        if (path / inside).exists() if inside is not None else path.is_file():
            return path
    looked = ", ".join(str(p / inside) if inside else str(p) for p in tried)
    raise DatasetError(f"{what} not found under {root}: tried {looked}")


def derangement(n: int, seed: int) -> list[int] | None:
    """A seeded permutation without fixed points (item i is paired with perm[i] != i); None when n < 2."""
    if n < 2:
        return None
    g = torch.Generator().manual_seed(seed)
    shift = int(torch.randint(1, n, (1,), generator=g))
    perm = torch.randperm(n, generator=g).tolist()
    # map i -> the item `shift` places later in a random cycle order: no fixed points, seeded
    pos = {item: k for k, item in enumerate(perm)}
    return [perm[(pos[i] + shift) % n] for i in range(n)]


def sample_rows(n: int, k: int) -> list[int]:
    """Up to ``k`` item indices spread evenly over ``n`` items (the report's sample)."""
    if n <= k:
        return list(range(n))
    step = n / k
    return [math.floor(i * step) for i in range(k)]


def safe_name(key: str) -> str:
    """A file name for an item key (readable prefix + a hash that keeps distinct keys distinct)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return keep[:80] + "-" + hashlib.sha1(key.encode()).hexdigest()[:8]


# ----------------------------------------------------------------------------------------------------------------------
# Predictions, report rows, scored systems
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """One item's model output: ``text`` for text tasks, a media ``path`` (None when the model produced none)."""

    key: str
    text: str = ""
    path: str | None = None
    note: str | None = None
    input_hash: str = ""  # the item's record and input files (a cached prediction is reused only for the same)

    @property
    def empty(self) -> bool:
        """No text (text tasks) and no media file (media tasks): a failed generation."""
        return self.path is None and not self.text.strip()


@dataclass
class Row:
    """One item for the report: (label, value, kind) cells. ``kind`` is "text" or a media kind name; media cells show
    as the kind's HTML element (image, audio player) or a download link."""

    cells: list[tuple[str, Any, str]] = field(default_factory=list)

    def text(self, label: str, value: Any) -> Row:
        self.cells.append((label, value, "text"))
        return self

    def media(self, label: str, path: str | Path | None, modality: str | None = None) -> Row:
        """A media file (None: the model produced none), shown as the media kind of ``modality`` (a registered
        modality's name), or else the kind its suffix says."""
        found: MediaKind | None = media_kind_of(modality) if modality is not None else None
        found = found or (kind_of_file(path) if path is not None else None)
        self.cells.append((label, path, found.name if found else "download"))
        return self


@dataclass
class System:
    """What one system (a baseline, the reference) scores on the n items, as statistics to bootstrap."""

    description: str
    metrics: dict[str, stats.Statistic]


# ----------------------------------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------------------------------
class Task:
    """A benchmark task: the options every task shares, and the run around a subclass's own parts.

    Subclasses set ``name``, ``needs`` (modalities the checkpoint must have), ``output`` ("text" or the generated
    modality), ``metric`` (the headline metric) and ``higher_is_better`` (per metric), keep their own options as
    attributes of the same name (the cache key and the reproducing command are built from them), and implement
    `read_items`, `predict_batch`, `score` and `report_rows`; `keys` has a default.
    """

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]]
    output: ClassVar[str]
    metric: ClassVar[str]
    higher_is_better: ClassVar[dict[str, bool]]

    def __init__(self, ckpt: str | None = None, data: Path | None = None, limit: int | None = None,
                 batch_size: int = 8, devices: int = 1, accelerator: str = "auto", out: Path | None = None,
                 judge: str | None = None, judge_options: dict[str, Any] | None = None, seed: int = 0,
                 settings: str = "paper", generation: dict[str, Any] | None = None, template: str = "base",
                 constrained: bool = True, image_decoder: str | None = None,
                 baseline: bool = True, report_samples: int = 12, tokenizers: dict[str, str] | None = None,
                 trust_code: bool = False, compile: bool | None = None, cache: bool = True, resamples: int = 1000,
                 publish: Path | None = None, adapter: str | None = None) -> None:
        """
        Args:
            ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
            data: dataset root in the task's standard layout (or its listing file); default: the demo corpus.
            limit: evaluate the first N items only.
            batch_size: prompts decoded together (and media embedded together when scoring).
            devices: processes (one per device); items are sharded over them.
            accelerator: "auto", "cpu", "gpu".
            out: output folder (default runs/benchmarks/TASK).
            judge: the judge model (CLIP, CLAP or ASR, by task): a local folder or checkpoint; default: the tiny judge
                shipped with anygpt. Unused by tasks scored without one.
            judge_options: extra options for the judge (open_clip model_name; laion_clap roberta, amodel).
            seed: seed for sampling, baselines and the bootstrap.
            settings: decoding preset family ("paper": the paper's evaluation settings; "release": the release's).
            generation: overrides of the decoding preset, e.g. {"num_beams": 1, "max_new_tokens": 40}.
            template: "base" (the pretraining pair template, what a base model saw) or "chat" (the release's chat
                template), the values of ``anygpt chat --template``.
            constrained: constrained decoding (on: every generated span decodes; off: the release's unconstrained
                sampling, where a malformed span counts as a failed item).
            image_decoder: a local stable-diffusion-2-1-unclip folder turning SEED image embeddings into pixels
                (default: the checkpoint's anygpt.json ``image_decoder``); used by tasks with image output.
            baseline: also score the baselines (and report whether the model beats them).
            report_samples: items shown in report.html.
            tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
            trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
            compile: torch.compile the decode step (true/false); default: on CUDA only, where it pays for itself.
            cache: reuse predictions of an earlier run in ``out`` with the same model files, options and data
                (``--cache false`` predicts everything again).
            resamples: bootstrap redraws behind every 95% interval.
            publish: also write results.json to this file (e.g. docs/demo/results/TASK.json, the files the README
                table is generated from by ``python -m benchmarks.table``).
            adapter: a LoRA adapter folder (PEFT format) merged into ``ckpt`` (its files are part of the cache key).
        """
        self.ckpt, self.data, self.limit, self.batch_size = ckpt, data, limit, batch_size
        self.devices, self.accelerator, self.out = devices, accelerator, out
        self.judge, self.judge_options, self.seed = judge, judge_options, seed
        self.settings, self.generation, self.template = settings, generation, template
        self.constrained, self.image_decoder = constrained, image_decoder
        self.baseline, self.report_samples, self.tokenizers = baseline, report_samples, tokenizers
        self.trust_code, self.cache, self.resamples, self.publish = trust_code, cache, resamples, publish
        self.compile, self.adapter = compile, adapter

    # -- what a task implements ----------------------------------------------------------------------------------------
    def read_items(self, root: Path) -> list[Any]:
        """The evaluated items (reader records), already cut to ``limit``."""
        raise NotImplementedError

    def keys(self, items: Sequence[Any]) -> list[str]:
        """A unique key per item (names its cached prediction and media file)."""
        return [str(getattr(it, "key", None) or getattr(it, "utt_id", None) or it.path) for it in items]

    def predict_batch(self, items: Sequence[Any], keys: Sequence[str], generator: torch.Generator
                      ) -> list[Prediction]:
        """The model's predictions for a batch of this rank's items."""
        raise NotImplementedError

    def score(self, items: Sequence[Any], preds: Sequence[Prediction]) -> dict[str, Any]:
        """Score every item (this rank scores its shard; gather with `gather`). Returns on rank 0 a dict with
        ``model`` ({metric: Statistic}), ``baselines`` ({name: System}), ``reference`` (System or None), ``judge``
        (what scored) and optionally ``notes`` and ``extra`` ({item index: {label: value}} shown in the report)."""
        raise NotImplementedError

    def report_rows(self, items: Sequence[Any], preds: Sequence[Prediction], extra: Mapping[int, Mapping[str, Any]],
                    indices: Sequence[int]) -> list[Row]:
        """Report rows for the sampled items ``indices``."""
        raise NotImplementedError

    # -- options -------------------------------------------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> list[str]:
        """Every ``__init__`` parameter of the class and its bases (the command-line options), shared ones first."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            if "__init__" not in vars(klass) or klass is object:
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return names

    def options(self) -> dict[str, Any]:
        missing = [n for n in self.option_names() if not hasattr(self, n)]
        if missing:
            raise TypeError(f"{type(self).__name__} must keep its options as attributes: {missing}")
        return {n: getattr(self, n) for n in self.option_names()}

    def command(self) -> str:
        """The command line that reproduces this run (options that differ from their defaults)."""
        defaults: dict[str, Any] = {}
        for klass in reversed(type(self).__mro__):
            if "__init__" in vars(klass) and klass is not object:
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.default is not inspect.Parameter.empty:
                        defaults[p.name] = p.default
        parts = ["anygpt", "benchmark", self.name]
        for name, value in self.options().items():
            if name in defaults and value == defaults[name]:
                continue
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower() if isinstance(
                value, bool) else str(value)
            parts.append(f"--{name} {_quoted(shown)}")
        return " ".join(parts)

    def _check_options(self) -> None:
        if not self.ckpt:
            raise ValueError(f"{self.name}: pass --ckpt (an AnyGPT folder, a released AnyGPT folder or a Lightning "
                             ".ckpt written by anygpt fit)")
        if self.template not in TEMPLATES:
            raise ValueError(f"--template must be one of {TEMPLATES}, got {self.template!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        if self.resamples < 1:
            raise ValueError(f"--resamples must be >= 1, got {self.resamples}")

    # -- the run -------------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Predict, score against the baselines, write results.json and report.html; returns the results."""
        self._check_options()
        self.root = data_root(self.data)
        items = self.read_items(self.root)
        if not items:
            raise DatasetError(f"{self.name}: no items to evaluate under {self.root}")
        self.start = time.perf_counter()
        self._start_processes()
        self.model = self._load_model()
        self.decoding_config = self.model.generation_config(self.output, self.settings,
                                                            template=self.template,
                                                            **(self.generation or {}))
        keys = self.keys(items)
        preds = self._predict(items, keys)
        scored = self.score(items, preds)
        return self._finish(items, preds, scored)

    def _start_processes(self) -> None:
        import lightning as L

        self.fabric = L.Fabric(accelerator=self.accelerator, devices=self.devices,
                               strategy="ddp" if self.devices > 1 else "auto")
        self.fabric.launch()
        self.rank, self.world = self.fabric.global_rank, self.fabric.world_size
        self.out_dir = Path(self.out or Path("runs/benchmarks") / self.name)
        self.media_dir = self.out_dir / "media"

    def _load_model(self):
        from anygpt.generation.pipeline import AnyGPT

        model = AnyGPT.load(self.ckpt, tokenizers=self.tokenizers, device=str(self.fabric.device),
                            trust_code=self.trust_code, compile=self.compile, image_decoder=self.image_decoder,
                            constrained=self.constrained, adapter=self.adapter)
        missing = [m for m in self.needs if m not in model.vocab.modalities]
        if missing:
            raise ValueError(f"{self.name} needs the {', '.join(missing)} modality but {self.ckpt} has only "
                             f"{list(model.vocab.modalities) or 'text'}: evaluate a checkpoint trained with "
                             f"{', '.join(missing)}")
        speech = model.tokenizers.get("speech")
        if self.output == "speech" and speech is not None and hasattr(speech.codec, "soundstorm"):
            try:
                speech.codec.soundstorm  # noqa: B018  (raises when none is attached)
            except RuntimeError as err:
                raise ValueError(f"{self.ckpt}: the speech tokenizer cannot turn generated tokens into audio: "
                                 f"{err}") from None
        return model

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    def shard(self, n: int) -> list[int]:
        """Indices of the items this rank predicts and scores."""
        return list(range(self.rank, n, self.world))

    def gather(self, local: dict[int, Any], n: int) -> list[Any]:
        """{global index: value} from every rank -> the list of all ``n`` values (on every rank)."""
        if self.world > 1:
            parts: list[dict[int, Any] | None] = [None] * self.world
            torch.distributed.all_gather_object(parts, local)
            merged = {k: v for part in parts for k, v in part.items()}
        else:
            merged = dict(local)
        if sorted(merged) != list(range(n)):
            raise RuntimeError(f"{self.name}: gathered {len(merged)} values for {n} items: a rank lost or "
                               "duplicated items")
        return [merged[i] for i in range(n)]

    # -- prompts -------------------------------------------------------------------------------------------------------
    def prompt(self, instruction: str, content: Sequence[Any], direction: str) -> list[int]:
        """Prompt ids for one item, one string encoded in one pass (as the release's tokenizer did). ``base``:
        the pretraining pair template (what a base model saw); ``chat``: the release's chat template
        (instruction-tuned models)."""
        force = None if self.output == "text" else self.output
        if self.template == "chat":
            return self.model.prompt_ids([instruction + " ", *content], force=force, output=self.output, task="none",
                                         template="chat")
        return self.model.encode_prompt(self.model.pair_prompt_text(instruction, content, direction, force))

    # -- prediction ----------------------------------------------------------------------------------------------------
    def cache_parts(self) -> dict[str, Any]:
        """What every cached prediction of this run shares: task, options, decoding and the model's file digests."""
        hashes = FileHashes(self.out_dir / "file_hashes.json")
        refs = self.model.bundle.refs
        files = model_files(self.ckpt, [refs[m].resolved_path if m in refs else None
                                        for m in self.model.vocab.modalities])
        if self.adapter:
            files = [*files, *sorted(p for p in Path(self.adapter).iterdir() if p.is_file())]
        parts = {"task": self.name,
                 "options": {k: v for k, v in self.options().items() if k not in NOT_IN_CACHE_KEY},
                 "decoding": self.decoding(),
                 "model": sorted(hashes.digest(f) for f in files)}  # content only: a moved checkpoint is the same
        hashes.save()
        return parts

    def input_hashes(self, items: Sequence[Any]) -> list[str]:
        """Per item: the hash of its record and of the content of every file it names (the data manifest)."""
        hashes = FileHashes(self.out_dir / "file_hashes.json")
        out = [cache_key(entry) for entry in manifest(items, hashes)]
        hashes.save()
        return out

    def _open_cache(self, items: Sequence[Any]) -> tuple[dict[str, Prediction], list[str]]:
        """Predictions of an earlier run with the same key (else the cache is cleared), and the items' input hashes.
        Rank 0 hashes; the other ranks receive the hashes."""
        cache = self.out_dir / "predictions"
        stamp = cache / "key.json"
        box: list[Any] = [None]
        if self.is_main:
            parts = self.cache_parts()
            key, model_hash = cache_key(parts), cache_key(parts["model"])
            old = json.loads(stamp.read_text()).get("key") if stamp.is_file() else None
            if cache.exists() and (old != key or not self.cache):
                why = "--cache false" if not self.cache else "the model, options or decoding changed"
                if any(cache.glob("rank*.jsonl")):
                    print(f"[benchmark] {why}: earlier predictions in {cache} are discarded")
                shutil.rmtree(cache)
                shutil.rmtree(self.media_dir / "predictions", ignore_errors=True)
            cache.mkdir(parents=True, exist_ok=True)
            stamp.write_text(json.dumps({"key": key, "model_hash": model_hash}))
            box = [(model_hash, self.input_hashes(items))]
        if self.world > 1:
            torch.distributed.broadcast_object_list(box, src=0)
        self.model_hash, inputs = box[0]
        self.fabric.barrier()
        found: dict[str, Prediction] = {}
        for file in sorted(cache.glob("rank*.jsonl")):
            for line in file.read_text().splitlines():
                try:
                    p = Prediction(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line cut short by an interruption
                if p.path is None or Path(p.path).is_file():
                    found[p.key] = p
        return found, inputs

    def _predict(self, items: Sequence[Any], keys: Sequence[str]) -> list[Prediction]:
        """One `Prediction` per item, all ranks together; cached ones are reused. Every rank gets all of them."""
        if len(set(keys)) != len(keys):
            raise DatasetError(f"{self.name}: item keys are not unique")
        cached, inputs = self._open_cache(items)
        self.data_hash = cache_key(inputs)
        mine = self.shard(len(keys))
        reuse = {i for i in mine if keys[i] in cached and cached[keys[i]].input_hash == inputs[i]}
        todo = [i for i in mine if i not in reuse]
        local = {i: cached[keys[i]] for i in reuse}
        if local and self.is_main:
            print(f"[benchmark] {len(local)} cached predictions reused from {self.out_dir / 'predictions'}")
        bs = self.batch_size
        desc = f"{self.name} (rank {self.rank})" if self.world > 1 else self.name
        bar = tqdm(total=len(todo), desc=desc, unit="item", disable=not self.is_main)
        with open(self.out_dir / "predictions" / f"rank{self.rank}.jsonl", "a") as log:
            for b in range(0, len(todo), bs):
                batch = todo[b: b + bs]
                generator = torch.Generator(self.device).manual_seed(self.seed * 1_000_003 + batch[0])
                made = self.predict_batch([items[i] for i in batch], [keys[i] for i in batch], generator)
                if len(made) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(made)} predictions for a batch of {len(batch)} items")
                for i, p in zip(batch, made, strict=True):
                    if p.key != keys[i]:
                        raise RuntimeError(f"{self.name}: prediction for {p.key!r} where {keys[i]!r} was due")
                    p.input_hash = inputs[i]
                    local[i] = p
                    log.write(json.dumps(asdict(p)) + "\n")
                log.flush()
                bar.update(len(batch))
        bar.close()
        return self.gather(local, len(keys))

    def generate(self, prompts: list[list[int]], generator: torch.Generator) -> list[list[int] | None]:
        """Generated ids per prompt (with the forced start marker in front); None for a prompt that leaves no room
        in the model's context (such an item counts as failed, not fatal)."""
        room = self.model.model.config.block_size - 1
        fits = [i for i, p in enumerate(prompts) if len(p) < room]
        out: list[list[int] | None] = [None] * len(prompts)
        if fits:
            ids, interrupted = self.model.generate_ids([prompts[i] for i in fits], self.decoding_config, generator)
            if interrupted:
                raise KeyboardInterrupt
            force = None if self.output == "text" else self.model.vocab.modalities[self.output].start_id
            for i, row in zip(fits, ids, strict=True):
                out[i] = ([force] + row) if force is not None else row
        return out

    def too_long(self, prompt: list[int]) -> str:
        return f"prompt of {len(prompt)} tokens leaves no room in the context of {self.model.model.config.block_size}"

    def text_predictions(self, keys: Sequence[str], prompts: list[list[int]], generator: torch.Generator
                         ) -> list[Prediction]:
        outs = self.generate(prompts, generator)
        return [Prediction(k, text=self.model.decode_text(ids)) if ids is not None else
                Prediction(k, note=self.too_long(p)) for k, p, ids in zip(keys, prompts, outs, strict=True)]

    def media_predictions(self, keys: Sequence[str], prompts: list[list[int]], generator: torch.Generator,
                          voices: Sequence[Any] | None = None) -> list[Prediction]:
        outs = self.generate(prompts, generator)
        voices = voices if voices is not None else [None] * len(keys)
        return [self._media_prediction(k, ids, v) if ids is not None else Prediction(k, note=self.too_long(p))
                for k, p, ids, v in zip(keys, prompts, outs, voices, strict=True)]

    def _media_prediction(self, key: str, ids: list[int], voice: Any = None) -> Prediction:
        """Decode generated ids and save the first media segment of the wanted modality (if any). A sampling decoder
        (SoundStorm) draws from a generator seeded by the task's seed and the item's key, so reruns decode alike."""
        try:
            segments = self.model.decode(ids, voice, seed=self.seed * 1_000_003 + zlib.crc32(key.encode()))
        except (ValueError, RuntimeError) as err:  # one bad item is counted as failed, not fatal
            return Prediction(key, note=f"decoding failed: {err}")
        media = [s for s in segments if s.modality == self.output]
        if not media or media[0].data is None or media[0].data.numel() == 0:
            note = media[0].note if media else f"no {self.output} span generated"
            return Prediction(key, note=note or f"empty {self.output}")
        modality = self.model.tokenizers[self.output]
        path = self.media_dir / "predictions" / f"{safe_name(key)}{modality.media.suffix}"
        modality.write(media[0].data, path)
        return Prediction(key, path=str(path), note=media[0].note)

    def score_text_to_media(self, items: Sequence[Any], preds: Sequence[Prediction], embed_text: Callable,
                            embed_media: Callable, picks: Sequence[Any] | None, media: str, metric: str,
                            ) -> dict[str, Any] | None:
        """Score media generated from captions (coco-t2i, musiccaps-gen) by the judge's cosine to the caption, in
        batches of embeddings. Baselines: the generated media against other items' captions (chance) and, given
        ``picks`` (a training file per item), real training media; reference: the real media (``items[i].path``).
        Failed generations score the worst cosine. Returns ``score``'s dict without judge/notes (rank 0)."""
        n, mine, bs = len(items), self.shard(len(items)), self.batch_size
        texts = embed_in_batches(embed_text, {i: items[i].caption for i in mine}, bs)
        generated = embed_in_batches(embed_media, {i: preds[i].path for i in mine if not preds[i].empty}, bs)
        real = embed_in_batches(embed_media, {i: items[i].path for i in mine}, bs)
        train = embed_in_batches(embed_media, {i: picks[i] for i in mine}, bs) if picks else {}
        gathered = self.gather({i: (texts[i], generated.get(i), real[i], train.get(i)) for i in mine}, n)
        if not self.is_main:
            return None
        text, real_emb = np.stack([g[0] for g in gathered]), np.stack([g[2] for g in gathered])
        failed = [g[1] is None for g in gathered]
        gen = np.stack([g[1] if g[1] is not None else np.zeros_like(g[0]) for g in gathered])
        baselines = {}
        perm = derangement(n, self.seed) if self.baseline else None
        if perm is not None:
            baselines["shuffled"] = System(f"the generated {media}s scored against other items' captions (chance)",
                                           {metric: stats.mean_of(cosines(gen, text[perm], failed))})
        if picks:
            baselines[f"random-train-{media}"] = System(
                f"a random real training {media} for each caption",
                {metric: stats.mean_of(cosines(np.stack([g[3] for g in gathered]), text))})
        return {"model": {metric: stats.mean_of(cosines(gen, text, failed))}, "baselines": baselines,
                "reference": System(f"the real {media}s scored against their own captions",
                                    {metric: stats.mean_of(cosines(real_emb, text))}),
                "extra": {i: {f"baseline {media}": picks[i]} for i in range(n)} if picks else {}}

    def decoding(self) -> dict[str, Any]:
        g = asdict(self.decoding_config)
        g.pop("extra", None)
        return {"settings": self.settings, "overrides": self.generation or {}, **g,
                "constrained": self.model.constrained, "template": self.template,
                "image_decoder": self.model.bundle.image_decoder}

    # -- results -------------------------------------------------------------------------------------------------------
    def _estimate(self, scored: dict[str, Any], n: int) -> dict[str, Any]:
        """Values, intervals and paired differences of everything ``score`` returned, on shared redraws (rank 0)."""
        statistics: dict[str, stats.Statistic] = {}
        differences: dict[str, tuple[str, str]] = {}
        for metric, stat in scored["model"].items():
            statistics[f"model/{metric}"] = stat
        for name, system in scored["baselines"].items():
            for metric, stat in system.metrics.items():
                statistics[f"{name}/{metric}"] = stat
                if metric in scored["model"]:
                    differences[f"{name}/{metric}/difference"] = (f"model/{metric}", f"{name}/{metric}")
        if scored.get("reference") is not None:
            for metric, stat in scored["reference"].metrics.items():
                statistics[f"reference/{metric}"] = stat
        est = stats.bootstrap_all(statistics, n, resamples=self.resamples, seed=self.seed, differences=differences)

        def block(prefix: str, metrics: Sequence[str]) -> dict[str, Any]:
            return {m: {**est[f"{prefix}/{m}"].to_dict(), "higher_is_better": self.higher_is_better[m]}
                    for m in metrics}

        baselines = {}
        for name, system in scored["baselines"].items():
            diffs = {m: stats.Comparison(est[f"{name}/{m}/difference"],
                                         stats.beats(est[f"{name}/{m}/difference"], self.higher_is_better[m])
                                         ).to_dict()
                     for m in system.metrics if m in scored["model"]}
            baselines[name] = {"description": system.description, "metrics": block(name, list(system.metrics)),
                               "difference": diffs}
        reference = None
        if scored.get("reference") is not None:
            reference = {"description": scored["reference"].description,
                         "metrics": block("reference", list(scored["reference"].metrics))}
        return {"metrics": block("model", list(scored["model"])), "baselines": baselines, "reference": reference}

    def _finish(self, items: Sequence[Any], preds: Sequence[Prediction], scored: dict[str, Any] | None
                ) -> dict[str, Any]:
        """Bootstrap, write results.json and report.html (rank 0); every rank returns the results."""
        n, n_failed = len(items), sum(p.empty for p in preds)
        results = None
        if self.is_main:
            assert scored is not None
            notes = list(scored.get("notes", []))
            if n_failed:
                notes.append(f"{n_failed} failed generation(s), scored as {scored.get('failed_as', 'empty output')}; "
                             f"the reason for each is its note in {self.out_dir / 'predictions'}/rank*.jsonl")
            estimates = self._estimate(scored, n)
            headline = estimates["metrics"][self.metric]
            results = {
                "task": self.name, "metric": self.metric, "higher_is_better": self.higher_is_better[self.metric],
                "value": headline["value"], "interval": headline["interval"], **estimates,
                "n": n, "n_failed": n_failed, "confidence": stats.CONFIDENCE, "resamples": self.resamples,
                "judge": scored["judge"], "decoding": self.decoding(), "template": self.template,
                "ckpt": str(self.ckpt), "model_hash": self.model_hash, "data": str(self.root),
                "data_hash": self.data_hash, "limit": self.limit,
                "seed": self.seed, "devices": self.world, "wall_time_s": round(time.perf_counter() - self.start, 2),
                "command": self.command(), "notes": notes,
            }
            results = json.loads(json.dumps(results, default=str))
            self.out_dir.mkdir(parents=True, exist_ok=True)
            text = json.dumps(results, indent=2)
            (self.out_dir / "results.json").write_text(text)
            if self.publish is not None:
                Path(self.publish).parent.mkdir(parents=True, exist_ok=True)
                Path(self.publish).write_text(text)
            indices = sample_rows(n, self.report_samples)
            rows = self.report_rows(items, preds, scored.get("extra", {}), indices)
            self._report(results, rows)
            print(summary(results))
        if self.world > 1:
            box = [results]
            torch.distributed.broadcast_object_list(box, src=0)
            results = box[0]
        self.fabric.barrier()
        return results

    def _report(self, results: dict[str, Any], rows: Sequence[Row]) -> None:
        page = HtmlPage(f"{results['task']}: {results['metric']} = {_fmt(results['value'], results['interval'])}")
        page.heading(f"Scores on {results['n']} items ({results['n_failed']} failed), "
                     f"{int(round(results['confidence'] * 100))}% bootstrap intervals")
        header, table = scores_table(results)
        page.table(header, table)
        page.heading("Run")
        page.table(["", ""], [line for line in summary_lines(results) if not line[0].startswith(
            ("model", "baseline ", "reference"))])
        if rows:
            page.heading(f"Samples ({len(rows)} of {results['n']})")
            header = [label for label, _, _ in rows[0].cells]
            page.table(header, [[self._cell(v, kind, i) for _, v, kind in row.cells] for i, row in enumerate(rows)],
                       escape=False)
        page.write(self.out_dir / "report.html")

    def _cell(self, value: Any, kind: str, row: int) -> str:
        if kind == "text":
            if isinstance(value, (list, tuple)):
                return "<br>".join(HtmlPage.text(v) for v in value)
            return HtmlPage.text(value if value is not None else "")
        if value is None:
            return '<span class="note">(none)</span>'
        path = Path(value)
        if not path.resolve().is_relative_to(self.out_dir.resolve()):  # inputs: copy next to the report
            copy = self.media_dir / "inputs" / f"{row:04d}-{path.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            path = copy
        return HtmlPage.media(path, MEDIA_KINDS.get(kind), self.out_dir)


# ----------------------------------------------------------------------------------------------------------------------
# Shared scoring helpers
# ----------------------------------------------------------------------------------------------------------------------
def cosines(a: np.ndarray, b: np.ndarray, failed: Sequence[bool] | None = None) -> np.ndarray:
    """Row-wise cosine of L2-normalised embeddings; rows marked ``failed`` get the worst score."""
    out = (np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)).sum(axis=1)
    if failed is not None:
        out[np.asarray(failed, dtype=bool)] = WORST_COSINE
    return out


def embed_in_batches(embed: Callable[[list[Any]], torch.Tensor], inputs: Mapping[int, Any],
                     batch_size: int) -> dict[int, np.ndarray]:
    """{index: embedding} of ``inputs`` ({index: input}), ``batch_size`` at a time (media are read per batch). The
    embeddings are rows of one matrix (one allocation, not one per item)."""
    order = list(inputs)
    matrix: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        emb = embed([inputs[i] for i in batch]).float().cpu().numpy()
        if matrix is None:
            matrix = np.empty((len(order), *emb.shape[1:]), dtype=np.float32)
        matrix[start:start + len(batch)] = emb
    return {} if matrix is None else dict(zip(order, matrix, strict=True))


def summary_lines(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) lines: the scores with intervals, each baseline with the paired difference, the rest."""
    def scores(metrics: dict[str, Any]) -> str:
        return ", ".join(f"{m} {_fmt(v['value'], v['interval'])}" for m, v in metrics.items())

    lines = [("model", f"{scores(results['metrics'])} on {results['n']} items ({results['n_failed']} failed)")]
    for name, b in results["baselines"].items():
        verdicts = []
        for m, d in b["difference"].items():
            verdict = "beats it" if d["beats"] else "does not beat it"
            verdicts.append(f"{m}: model - baseline {_fmt(d['value'], d['interval'], signed=True)}, {verdict}")
        lines.append((f"baseline {name}", f"{scores(b['metrics'])} ({b['description']}); " + "; ".join(verdicts)))
    if results.get("reference"):
        ref = results["reference"]
        lines.append(("reference", f"{scores(ref['metrics'])} ({ref['description']})"))
    confidence = int(round(results["confidence"] * 100))
    lines += [("intervals", f"{confidence}% bootstrap over items, {results['resamples']} redraws; differences paired"),
              ("judge", results["judge"]), ("decoding", json.dumps(results["decoding"])),
              ("prompt template", results["template"]), ("checkpoint", f"{results['ckpt']} (sha256 of its files "
                                                                         f"{results['model_hash'][:12]})"),
              ("data", results["data"]), ("devices", str(results["devices"])),
              ("wall time", f"{results['wall_time_s']} s"), ("command", results["command"])]
    lines += [("note", n) for n in results["notes"]]
    return lines


def scores_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The model, each baseline and the reference as rows; per metric its score and the paired model - row
    difference with the verdict."""
    metrics = list(results["metrics"])
    arrows = {m: "higher is better" if results["metrics"][m]["higher_is_better"] else "lower is better"
              for m in metrics}
    header = ["", "what", *(f"{m} ({arrows[m]})" for m in metrics), *(f"model - this, {m}" for m in metrics)]
    rows = [["model", "the evaluated checkpoint",
             *(_fmt(results["metrics"][m]["value"], results["metrics"][m]["interval"]) for m in metrics),
             *("" for _ in metrics)]]
    for name, b in results["baselines"].items():
        diffs = []
        for m in metrics:
            d = b["difference"].get(m)
            diffs.append("" if d is None else f"{_fmt(d['value'], d['interval'], signed=True)}: "
                                              f"{'beats it' if d['beats'] else 'does not beat it'}")
        rows.append([f"baseline: {name}", b["description"],
                     *(_fmt(b["metrics"][m]["value"], b["metrics"][m]["interval"]) if m in b["metrics"] else ""
                       for m in metrics), *diffs])
    if results.get("reference"):
        ref = results["reference"]
        rows.append(["reference", ref["description"],
                     *(_fmt(ref["metrics"][m]["value"], ref["metrics"][m]["interval"]) if m in ref["metrics"] else ""
                       for m in metrics), *("" for _ in metrics)])
    return header, rows


def summary(results: dict[str, Any]) -> str:
    lines = summary_lines(results)
    return "\n".join([f"[benchmark] {results['task']}"] + [f"  {label}: {text}" for label, text in lines])


def _fmt(value: float | None, interval: Sequence[float] | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    spec = "+.3f" if signed else ".3f"
    if interval is None:
        return format(value, spec)
    return f"{value:{spec}} [{interval[0]:{spec}}, {interval[1]:{spec}}]"


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)
