"""The run around a task's own parts: launch, model loading, the sharded prediction loop with its content-keyed
cache, prompting helpers, and the hand-over to the bootstrap and the report.

1. start one process per device (`lightning.Fabric`); items are dealt out round-robin (``items[rank::world]``);
2. predict every item, appending to ``OUT/predictions/rank*.jsonl`` as it goes (media under ``OUT/media``); a rerun
   with the same cache key (`benchmarks.tasks.cache`) skips the items found there, so a long evaluation resumes;
3. score (the task's `Task.score`), bootstrap (`benchmarks.tasks.scoring.estimate`);
4. write ``results.json`` and ``report.html`` (`benchmarks.tasks.report`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tqdm import tqdm

from anygpt.data.sources.base import DatasetError
from anygpt.generation.pipeline import AnyGPT
from benchmarks import stats
from benchmarks.tasks.cache import FileHashes, cache_key, files_under, manifest, model_files
from benchmarks.tasks.items import Prediction, data_root, safe_name
from benchmarks.tasks.options import TaskOptions
from benchmarks.tasks.report import sample_rows, write_outputs
from benchmarks.tasks.scoring import Scored, estimate


class Runner(TaskOptions):
    """Runs a task (`benchmarks.tasks.base.Task`, which declares the hooks called here) on its options."""

    def run(self) -> dict[str, Any]:
        """Predict, score against the baselines, write results.json and report.html; returns the results."""
        self.check_options()
        self.root = data_root(self.data)
        items = self.read_items(self.root)
        if not items:
            raise DatasetError(f"{self.name}: no items to evaluate under {self.root}")
        self.start = time.perf_counter()
        self._start_processes()
        self.model = self._load_model()
        self.decoding_config = self.model.generation_config(self.output, self.settings,
                                                            template=self.prompt.template, **(self.generation or {}))
        keys = self.keys(items)
        preds = self._predict(items, keys)
        scored = self.score(items, preds)
        if self.is_main and not isinstance(scored, Scored):
            raise TypeError(f"{self.name}: score() must return a Scored on rank 0, got {type(scored).__name__}")
        return self._finish(items, preds, scored)

    def _start_processes(self) -> None:
        self.fabric = L.Fabric(accelerator=self.accelerator, devices=self.devices,
                               strategy="ddp" if self.devices > 1 else "auto")
        self.fabric.launch()
        self.rank, self.world = self.fabric.global_rank, self.fabric.world_size
        self.out_dir = Path(self.out or Path("runs/benchmarks") / self.name)
        self.media_dir = self.out_dir / "media"

    def _load_model(self) -> AnyGPT:
        # --prompt.template picks the task's prompt (`item_prompt`); the model keeps its checkpoint's own template
        # for the rest (e.g. the music input window), as a chat session with that checkpoint would
        model = AnyGPT.load(self.ckpt, self.loading, dataclasses.replace(self.prompt, template=None),
                            device=str(self.fabric.device))
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

    # -- sharding ------------------------------------------------------------------------------------------------------
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

    # -- prompts and generation ----------------------------------------------------------------------------------------
    def item_prompt(self, instruction: str, content: Sequence[Any], direction: str) -> list[int]:
        """Prompt ids for one item, one string encoded in one pass (as the release's tokenizer did). ``base``:
        the pretraining pair template (what a base model saw); ``chat``: the release's chat template
        (instruction-tuned models)."""
        force = None if self.output == "text" else self.output
        if self.prompt.template == "chat":
            return self.model.prompt_ids([instruction + " ", *content], force=force, output=self.output, task="none",
                                         template="chat")
        return self.model.encode_prompt(self.model.pair_prompt_text(instruction, content, direction, force))

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
        """One text `Prediction` per prompt (a prompt too long for the context: an empty one with a note)."""
        outs = self.generate(prompts, generator)
        return [Prediction(k, text=self.model.decode_text(ids)) if ids is not None else
                Prediction(k, note=self.too_long(p)) for k, p, ids in zip(keys, prompts, outs, strict=True)]

    def media_predictions(self, keys: Sequence[str], prompts: list[list[int]], generator: torch.Generator,
                          voices: Sequence[Any] | None = None) -> list[Prediction]:
        """One media `Prediction` per prompt: the first decoded span of the task's ``output`` modality, saved."""
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

    def decoding(self) -> dict[str, Any]:
        """The decoding settings in effect (results.json ``decoding``; part of the cache key)."""
        g = asdict(self.decoding_config)
        g.pop("extra", None)
        return {"settings": self.settings, "overrides": self.generation or {}, **g,
                "constrained": self.model.constrained, "template": self.prompt.template,
                "image_decoder": self.model.bundle.image_decoder}

    def tokenizers(self) -> dict[str, dict[str, Any]]:
        """Each modality's codec class and how its files are read (results.json ``tokenizers``): a released SEED-2
        reads images the original's way, an anygpt-trained tokenizer anygpt's (`anygpt.media.IMAGE_PREPROCESSING`)."""
        out: dict[str, dict[str, Any]] = {}
        for name, modality in self.model.tokenizers.items():
            codec = modality.codec
            out[name] = {"codec": f"{type(codec).__module__}.{type(codec).__qualname__}"}
            if codec.image_size is not None:
                out[name].update(image_size=codec.image_size, image_preprocess=codec.image_preprocess)
        return out

    # -- the prediction loop and its cache -----------------------------------------------------------------------------
    def cache_parts(self, hashes: FileHashes) -> dict[str, Any]:
        """What every cached prediction of this run shares: task, options, decoding and the model's file digests."""
        refs = self.model.bundle.refs
        files = model_files(self.ckpt, [refs[m].resolved_path if m in refs else None
                                        for m in self.model.vocab.modalities])
        if self.loading.adapter:  # a LoRA adapter merged on load is part of the model
            files = [*files, *files_under(Path(self.loading.adapter))]
        parts = {"task": self.name, "options": self.cache_options(), "decoding": self.decoding(),
                 "model": sorted(hashes.digest(f) for f in files)}  # content only: a moved checkpoint is the same
        hashes.save()
        return parts

    def _open_cache(self, items: Sequence[Any]) -> tuple[dict[str, Prediction], list[str]]:
        """Predictions of an earlier run with the same key (else the cache is cleared), and the items' input hashes.
        Rank 0 hashes; the other ranks receive the hashes."""
        cache = self.out_dir / "predictions"
        stamp = cache / "key.json"
        box: list[Any] = [None]
        if self.is_main:
            hashes = FileHashes(self.out_dir / "file_hashes.json")
            parts = self.cache_parts(hashes)
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
            # per item: the hash of its record and of the content of every file it names (the data manifest)
            box = [(model_hash, [cache_key(entry) for entry in manifest(items, hashes)])]
            hashes.save()
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

    # -- results -------------------------------------------------------------------------------------------------------
    def _finish(self, items: Sequence[Any], preds: Sequence[Prediction], scored: Scored | None) -> dict[str, Any]:
        """Bootstrap, write results.json and report.html (rank 0); every rank returns the results."""
        n, n_failed = len(items), sum(p.empty for p in preds)
        results = None
        if self.is_main:
            assert scored is not None
            notes = list(scored.notes)
            if n_failed:
                notes.append(f"{n_failed} failed generation(s), scored as {scored.failed_as}; "
                             f"the reason for each is its note in {self.out_dir / 'predictions'}/rank*.jsonl")
            estimates = estimate(scored, n, self.higher_is_better, self.resamples, self.seed)
            headline = estimates["metrics"][self.metric]
            training = self.model.bundle.training  # how the measured weights were trained (seed, precision, CPU)
            results = {
                "task": self.name, "metric": self.metric, "higher_is_better": self.higher_is_better[self.metric],
                "value": headline["value"], "interval": headline["interval"], **estimates,
                "n": n, "n_failed": n_failed, "confidence": stats.CONFIDENCE, "resamples": self.resamples,
                "judge": scored.judge, "decoding": self.decoding(), "template": self.prompt.template,
                "tokenizers": self.tokenizers(), "ckpt": str(self.ckpt), "model_hash": self.model_hash,
                "train_seed": (training or {}).get("train_seed"), "training": training,
                "data": str(self.root), "data_hash": self.data_hash, "limit": self.limit,
                "seed": self.seed, "devices": self.world, "wall_time_s": round(time.perf_counter() - self.start, 2),
                "command": self.command(), "notes": notes, "set_distances": scored.set_distances,
            }
            results = json.loads(json.dumps(results, default=str))
            rows = self.report_rows(items, preds, scored.extra, sample_rows(n, self.report_samples))
            write_outputs(results, rows, self.out_dir, self.publish)
        if self.world > 1:
            box = [results]
            torch.distributed.broadcast_object_list(box, src=0)
            results = box[0]
        self.fabric.barrier()
        return results
