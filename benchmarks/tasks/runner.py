"""What every benchmark task shares: data location, model loading, sharded prediction with a resumable cache,
metric gathering, results.json and report.html.

A task is a plain function (``run``) that reads its items, asks `Evaluation.predict` for one prediction per item,
updates torchmetrics metrics with this rank's share of the items (the metrics gather across ranks themselves), and
hands rows to `Evaluation.finish`. Several devices: `lightning.Fabric` starts one process per device, items are
dealt out round-robin (``items[rank::world]``) and predictions are gathered with ``all_gather_object``.

Predictions are appended to ``OUT/predictions/rank*.jsonl`` as they are made (media under ``OUT/media``), keyed by
item; a rerun with the same checkpoint, data and decoding settings skips the items found there, so an interrupted
long evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from anygpt.data.readers import DatasetError
from anygpt.htmlpage import HtmlPage
from anygpt.modalities.registry import media_kind_of

DEMO_DIR = Path("data/demo")
TEMPLATES = ("pretrain", "chat")


@dataclass
class TaskArgs:
    """The options every task takes (the function signatures of the tasks repeat them for jsonargparse)."""

    task: str
    ckpt: str | None
    data: Path | None = None
    limit: int | None = None
    batch_size: int = 8
    devices: int = 1
    accelerator: str = "auto"
    out: Path | None = None
    judge: str | None = None
    judge_options: dict[str, Any] | None = None
    seed: int = 0
    settings: str = "paper"
    generation: dict[str, Any] | None = None
    template: str = "pretrain"
    baseline: bool = True
    report_samples: int = 12
    tokenizers: dict[str, str] | None = None
    trust_code: bool = False


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


# ----------------------------------------------------------------------------------------------------------------------
# Predictions
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """One item's model output: ``text`` for text tasks, a media ``path`` (None when the model produced none)."""

    key: str
    text: str = ""
    path: str | None = None
    note: str | None = None

    @property
    def empty(self) -> bool:
        """No text (text tasks) and no media file (media tasks)."""
        return self.path is None and not self.text.strip()


@dataclass
class Row:
    """One item for the report: its inputs and outputs as (label, value, kind) cells; kind "text", "image", "audio"."""

    cells: list[tuple[str, Any, str]] = field(default_factory=list)

    def add(self, label: str, value: Any, kind: str = "text") -> Row:
        self.cells.append((label, value, kind))
        return self


class Evaluation:
    """One benchmark run: processes (Fabric), the model, the prediction cache and the output folder."""

    def __init__(self, args: TaskArgs, needs: Sequence[str], output: str) -> None:
        import lightning as L

        if not args.ckpt:
            raise ValueError(f"{args.task}: pass --ckpt (an AnyGPT folder, a released AnyGPT folder or a Lightning "
                             ".ckpt written by anygpt fit)")
        if args.template not in TEMPLATES:
            raise ValueError(f"--template must be one of {TEMPLATES}, got {args.template!r}")
        if args.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
        self.args, self.output = args, output
        self.start = time.perf_counter()
        self.fabric = L.Fabric(accelerator=args.accelerator, devices=args.devices,
                               strategy="ddp" if args.devices > 1 else "auto")
        self.fabric.launch()
        self.rank, self.world = self.fabric.global_rank, self.fabric.world_size
        self.out = Path(args.out or Path("runs/benchmarks") / args.task)
        self.model = self._load_model(needs)
        self.generation = self.model.generation_config(output, args.settings, **(args.generation or {}))
        self.media_dir = self.out / "media"

    # -- setup ---------------------------------------------------------------------------------------------------------
    def _load_model(self, needs: Sequence[str]):
        from anygpt.generation.pipeline import AnyGPT

        model = AnyGPT.load(self.args.ckpt, tokenizers=self.args.tokenizers, device=str(self.fabric.device),
                            trust_code=self.args.trust_code)
        missing = [m for m in needs if m not in model.vocab.modalities]
        if missing:
            raise ValueError(f"{self.args.task} needs the {', '.join(missing)} modality but {self.args.ckpt} has only "
                             f"{list(model.vocab.modalities) or 'text'}: evaluate a checkpoint trained with "
                             f"{', '.join(missing)}")
        speech = model.tokenizers.get("speech")
        if self.output == "speech" and speech is not None and hasattr(speech.codec, "soundstorm"):
            try:
                speech.codec.soundstorm  # noqa: B018  (raises when none is attached)
            except RuntimeError as err:
                raise ValueError(f"{self.args.ckpt}: the speech tokenizer cannot turn generated tokens into audio: "
                                 f"{err}") from None
        return model

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def metric(self, metric: Any) -> Any:
        """A torchmetrics metric on this rank's device (NCCL gathers only device tensors)."""
        return metric.to(self.fabric.device)

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
            raise RuntimeError(f"{self.args.task}: gathered {len(merged)} predictions for {n} items: a rank lost or "
                               "duplicated items")
        return [merged[i] for i in range(n)]

    # -- prompts -------------------------------------------------------------------------------------------------------
    def prompt(self, instruction: str, content: Sequence[Any], direction: str) -> list[int]:
        """Prompt ids for one item. ``pretrain``: the pretraining pair template (what a base model saw);
        ``chat``: the release's chat template (instruction-tuned models)."""
        force = None if self.output == "text" else self.output
        if self.args.template == "chat":
            return self.model.prompt_ids([instruction + " ", *content], force=force)
        vocab = self.model.vocab
        ids = [vocab.text.bos_id] if vocab.text.bos_id is not None else []
        if direction == "x2text":
            ids += vocab.encode(f"[Human]: {instruction} ") + self.model.encode_parts(content)
            ids += vocab.encode("<eoh> [MMGPT]:")
        else:
            (text,) = content
            ids += vocab.encode(f"[Human]: {instruction} This is input: {text}<eoh> [MMGPT]:")
        if force is not None:
            ids += vocab.encode(" ") + [vocab.modalities[force].start_id]
        return ids

    # -- prediction ----------------------------------------------------------------------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        a = self.args
        return {"task": a.task, "ckpt": str(Path(a.ckpt).resolve()), "data": str(a.data), "seed": a.seed,
                "template": a.template, "decoding": self.decoding(), "world": self.world,
                "batch_size": a.batch_size}

    def _open_cache(self) -> dict[str, Prediction]:
        """Predictions of an earlier run with the same fingerprint (else the cache is cleared)."""
        cache = self.out / "predictions"
        fingerprint = json.dumps(self._fingerprint(), sort_keys=True, default=str)
        stamp = cache / "fingerprint.json"
        if self.is_main:
            if stamp.exists() and stamp.read_text() != fingerprint:
                shutil.rmtree(cache)
                shutil.rmtree(self.media_dir, ignore_errors=True)
            cache.mkdir(parents=True, exist_ok=True)
            stamp.write_text(fingerprint)
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
        return found

    def predict(self, keys: Sequence[str], make: Callable[[list[int], torch.Generator], list[Prediction]],
                desc: str) -> list[Prediction]:
        """One `Prediction` per key, all ranks together: ``make(indices, generator)`` predicts a batch of this
        rank's items; cached ones are reused. Returns every item's prediction on every rank."""
        if len(set(keys)) != len(keys):
            raise DatasetError(f"{self.args.task}: item keys are not unique")
        cached = self._open_cache()
        mine = self.shard(len(keys))
        todo = [i for i in mine if keys[i] not in cached]
        local = {i: cached[keys[i]] for i in mine if keys[i] in cached}
        if local and self.is_main:
            print(f"[benchmark] {len(local)} cached predictions reused from {self.out / 'predictions'}")
        bs = self.args.batch_size
        bar = tqdm(total=len(todo), desc=f"{desc} (rank {self.rank})" if self.world > 1 else desc, unit="item",
                   disable=not self.is_main)
        with open(self.out / "predictions" / f"rank{self.rank}.jsonl", "a") as log:
            for b in range(0, len(todo), bs):
                batch = todo[b: b + bs]
                generator = torch.Generator(self.fabric.device).manual_seed(self.args.seed * 1_000_003 + batch[0])
                made = make(batch, generator)
                if len(made) != len(batch):
                    raise RuntimeError(f"{self.args.task}: {len(made)} predictions for a batch of {len(batch)} items")
                for i, p in zip(batch, made, strict=True):
                    if p.key != keys[i]:
                        raise RuntimeError(f"{self.args.task}: prediction for {p.key!r} where {keys[i]!r} was due")
                    local[i] = p
                    log.write(json.dumps(asdict(p)) + "\n")
                log.flush()
                bar.update(len(batch))
        bar.close()
        return self.gather(local, len(keys))

    def generate(self, prompts: list[list[int]], generator: torch.Generator) -> list[list[int] | None]:
        """Generated ids per prompt (with the forced start marker in front); None for a prompt that leaves no room
        in the model's context (such an item is counted as empty, not fatal)."""
        room = self.model.model.config.block_size - 1
        fits = [i for i, p in enumerate(prompts) if len(p) < room]
        out: list[list[int] | None] = [None] * len(prompts)
        if fits:
            ids, interrupted = self.model.generate_ids([prompts[i] for i in fits], self.generation, generator)
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
        return [self.media_prediction(k, ids, v) if ids is not None else Prediction(k, note=self.too_long(p))
                for k, p, ids, v in zip(keys, prompts, outs, voices, strict=True)]

    def media_prediction(self, key: str, ids: list[int], voice: Any = None) -> Prediction:
        """Decode generated ids and save the first media segment of the wanted modality (if any)."""
        try:
            segments = self.model.decode(ids, voice)
        except (ValueError, RuntimeError) as err:  # one bad item is counted as empty, not fatal
            return Prediction(key, note=f"decoding failed: {err}")
        media = [s for s in segments if s.modality == self.output]
        if not media or media[0].data is None or media[0].data.numel() == 0:
            note = media[0].note if media else f"no {self.output} span generated"
            return Prediction(key, note=note or f"empty {self.output}")
        modality = self.model.tokenizers[self.output]
        path = self.media_dir / "predictions" / f"{_safe(key)}{modality.media.suffix}"
        modality.write(media[0].data, path)
        return Prediction(key, path=str(path), note=media[0].note)

    # -- results -------------------------------------------------------------------------------------------------------
    def decoding(self) -> dict[str, Any]:
        g = asdict(self.generation)
        g.pop("extra", None)
        return {"settings": self.args.settings, "overrides": self.args.generation or {}, **g}

    def finish(self, metric: str, values: dict[str, float], n: int, n_empty: int, judge: str,
               baseline: dict[str, Any] | None, rows: Sequence[Row], notes: Sequence[str] = (),
               reference: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write results.json and report.html (rank 0) and return the results on every rank."""
        a = self.args
        if n_empty:
            notes = [*notes, f"{n_empty} empty prediction(s): the reason for each is its note in "
                             f"{self.out / 'predictions'}/rank*.jsonl"]
        results = {
            "task": a.task, "metric": metric, "value": values[metric], "metrics": values, "n": n,
            "n_empty": n_empty,
            "baseline_value": baseline["values"][metric] if baseline and baseline.get("values") else None,
            "baseline": baseline, "reference": reference, "judge": judge, "decoding": self.decoding(),
            "template": a.template, "ckpt": str(a.ckpt), "data": str(a.data), "limit": a.limit, "seed": a.seed,
            "devices": self.world, "wall_time_s": round(time.perf_counter() - self.start, 2), "notes": list(notes),
        }
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
            self._report(results, rows)
            base = _rounded(baseline["values"]) if baseline and baseline.get("values") else None
            print(f"[benchmark] {a.task}: {_rounded(values)} on {n} items ({n_empty} empty), baseline {base}; "
                  f"{self.out / 'results.json'}")
        self.fabric.barrier()
        return results

    def _report(self, results: dict[str, Any], rows: Sequence[Row]) -> None:
        value = results["value"]
        page = HtmlPage(f"{results['task']}: {results['metric']} = "
                        f"{'n/a' if value is None else format(value, '.4f')}")
        summary = [("metrics", json.dumps(_rounded(results["metrics"]))),
                   ("items", f"{results['n']} ({results['n_empty']} empty predictions)")]
        for name in ("baseline", "reference"):
            if results[name]:
                shown = json.dumps(_rounded(results[name]["values"])) if results[name].get("values") else "n/a"
                summary.append((name, f"{shown}: {results[name]['description']}"))
        summary += [("judge", results["judge"]), ("decoding", json.dumps(results["decoding"])),
                    ("prompt template", results["template"]), ("checkpoint", results["ckpt"]),
                    ("data", results["data"]), ("devices", str(results["devices"])),
                    ("wall time", f"{results['wall_time_s']} s")]
        summary += [("note", n) for n in results["notes"]]
        page.table(["", ""], summary)
        if rows:
            page.heading(f"Samples ({len(rows)} of {results['n']})")
            header = [label for label, _, _ in rows[0].cells]
            page.table(header, [[self._cell(v, kind, i) for _, v, kind in row.cells] for i, row in enumerate(rows)],
                       escape=False)
        page.write(self.out / "report.html")

    def _cell(self, value: Any, kind: str, row: int) -> str:
        if kind == "text":
            if isinstance(value, (list, tuple)):
                return "<br>".join(HtmlPage.text(v) for v in value)
            return HtmlPage.text(value if value is not None else "")
        if value is None:
            return '<span class="note">(none)</span>'
        path = Path(value)
        if not path.resolve().is_relative_to(self.out.resolve()):  # inputs: copy next to the report
            copy = self.media_dir / "inputs" / f"{row:04d}-{path.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            path = copy
        return HtmlPage.media(path, media_kind_of(kind), self.out)


def _rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(v, 4)) for k, v in values.items()}


def sample_rows(n: int, k: int) -> list[int]:
    """Up to ``k`` item indices spread evenly over ``n`` items (the report's sample)."""
    if n <= k:
        return list(range(n))
    step = n / k
    return [math.floor(i * step) for i in range(k)]


def _safe(key: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return keep[:80] + "-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def compute(metric: Any) -> float | None:
    """The metric's value over every rank's updates; None when no item could be scored (all predictions empty)."""
    try:
        return float(metric.compute())
    except ValueError as err:
        if "no " in str(err):
            return None
        raise


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """A mono float waveform [T] and its sample rate (metrics and judges resample to their own rate)."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise DatasetError(f"cannot read audio {path}: {err}") from err
    return torch.from_numpy(data.mean(axis=1)), int(rate)


def read_image(path: str | Path):
    from PIL import Image

    try:
        return Image.open(path).convert("RGB")
    except Exception as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err
