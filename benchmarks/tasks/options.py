"""A benchmark task's options: dataclass fields, each saying on itself whether it can change a prediction.

Every task is a dataclass (`benchmarks.tasks.base.Task`); its fields are its command-line options
(``anygpt benchmark TASK --OPTION VALUE``). A field declared with ``option(default, cache=False)`` cannot change what
the model predicts (how predictions are scored or shown, where results go, or a path whose *content* is hashed
instead), so it stays out of the prediction cache key: changing it reuses the cached predictions. Every other field
keys the cache. A task's own scoring-only options are declared so by the task, next to the option.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATES = ("base", "chat")
CACHE = "cache"  # the field-metadata key: False = left out of the prediction cache key


def option(default: Any = None, *, cache: bool = True) -> Any:
    """A task option with its default; ``cache=False``: it cannot change a prediction (scoring, reporting, output
    places, or a path hashed by content), so the prediction cache ignores it."""
    if isinstance(default, (dict, list, set)):
        raise TypeError("a mutable default must be None (dataclass fields share their defaults)")
    return dataclasses.field(default=default, metadata={CACHE: cache})


@dataclass
class TaskOptions:
    """The options every task shares.

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
    """

    # the model and data are keyed by the content of their files (benchmarks.tasks.cache), not by their paths
    ckpt: str | None = option(None, cache=False)
    data: Path | None = option(None, cache=False)
    limit: int | None = option(None, cache=False)  # each cached prediction carries the hash of its own item
    batch_size: int = option(8)
    devices: int = option(1)
    accelerator: str = option("auto")
    out: Path | None = option(None, cache=False)
    judge: str | None = option(None, cache=False)
    judge_options: dict[str, Any] | None = option(None, cache=False)
    seed: int = option(0)
    settings: str = option("paper")
    generation: dict[str, Any] | None = option(None)
    template: str = option("base")
    constrained: bool = option(True)
    image_decoder: str | None = option(None)
    baseline: bool = option(True, cache=False)
    report_samples: int = option(12, cache=False)
    tokenizers: dict[str, str] | None = option(None, cache=False)
    trust_code: bool = option(False, cache=False)
    compile: bool | None = option(None, cache=False)  # the same predictions, compiled or not
    cache: bool = option(True, cache=False)
    resamples: int = option(1000, cache=False)
    publish: Path | None = option(None, cache=False)

    def options(self) -> dict[str, Any]:
        """Every option (field) and its value, shared ones first."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def cache_options(self) -> dict[str, Any]:
        """The options that can change a prediction (the ones in the prediction cache key)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get(CACHE, True)}

    def command(self) -> str:
        """The command line that reproduces this run (options that differ from their defaults)."""
        parts = ["anygpt", "benchmark", getattr(self, "name", type(self).__name__)]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            shown = (json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower()
                     if isinstance(value, bool) else str(value))
            parts.append(f"--{f.name} {shlex.quote(shown)}")
        return " ".join(parts)

    def check_options(self) -> None:
        """Refuse option values no run can use, naming the option."""
        if not self.ckpt:
            raise ValueError(f"{getattr(self, 'name', 'benchmark')}: pass --ckpt (an AnyGPT folder, a released "
                             "AnyGPT folder or a Lightning .ckpt written by anygpt fit)")
        if self.template not in TEMPLATES:
            raise ValueError(f"--template must be one of {TEMPLATES}, got {self.template!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        if self.resamples < 1:
            raise ValueError(f"--resamples must be >= 1, got {self.resamples}")
