"""A benchmark task's options: dataclass fields (``anygpt benchmark TASK --OPTION VALUE``), each saying on itself
whether it can change a prediction (`option`): those that cannot stay out of the prediction cache key, so changing them
reuses the cached predictions.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anygpt.generation.options import LoadingOptions, PromptOptions
from anygpt.prompts import TEMPLATES

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
        prompt: how prompts are written, as for ``anygpt chat`` (`anygpt.generation.options.PromptOptions`);
            here ``--prompt.template`` is "base" (the pretraining pair template, what a base model saw, the default)
            or "chat" (the release's chat template) and picks the task's prompt; with ``--prompt.constrained false``
            the release's unconstrained sampling, where a malformed span counts as a failed item. The task writes
            its own instruction and asks for its output itself (``task`` and ``force_marker`` are not used).
        baseline: also score the baselines (and report whether the model beats them).
        report_samples: items shown in report.html.
        loading: how the checkpoint is opened, as for ``anygpt chat`` (``--loading.tokenizers``,
            ``--loading.trust_code``, ``--loading.image_decoder``, ``--loading.compile``).
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
    prompt: PromptOptions = option(PromptOptions(template="base"))
    baseline: bool = option(True, cache=False)
    report_samples: int = option(12, cache=False)
    # tokenizers are hashed by content; the image decoder is in the decoding record; compiled or not: the same
    loading: LoadingOptions = option(LoadingOptions(), cache=False)
    cache: bool = option(True, cache=False)
    resamples: int = option(1000, cache=False)
    publish: Path | None = option(None, cache=False)

    def options(self) -> dict[str, Any]:
        """Every option (field) and its value, shared ones first."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def cache_options(self) -> dict[str, Any]:
        """The options that can change a prediction (the ones in the prediction cache key)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.metadata.get(CACHE, True)}

    def command(self) -> str:
        """The command line that reproduces this run (options that differ from their defaults; a group's fields
        as ``--group.field``)."""
        parts = ["anygpt", "benchmark", getattr(self, "name", type(self).__name__)]
        for flag, value in _changed(self, ""):
            shown = (json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower()
                     if isinstance(value, bool) else str(value))
            parts.append(f"--{flag} {shlex.quote(shown)}")
        return " ".join(parts)

    def check_options(self) -> None:
        """Refuse option values no run can use, naming the option."""
        if not self.ckpt:
            raise ValueError(f"{getattr(self, 'name', 'benchmark')}: pass --ckpt (an AnyGPT folder, a released "
                             "AnyGPT folder or a Lightning .ckpt written by anygpt fit)")
        if self.prompt.template not in TEMPLATES:
            raise ValueError(f"--prompt.template must be one of {TEMPLATES}, got {self.prompt.template!r}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        if self.resamples < 1:
            raise ValueError(f"--resamples must be >= 1, got {self.resamples}")


def _changed(options: Any, prefix: str, defaults: Any = None) -> list[tuple[str, Any]]:
    """(flag, value) of every field that differs from its default (from ``defaults``, an instance, when given),
    option groups (dataclass values) field by field."""
    out = []
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        default = getattr(defaults, f.name) if defaults is not None else f.default
        if dataclasses.is_dataclass(value) and dataclasses.is_dataclass(default):
            out += _changed(value, f"{prefix}{f.name}.", default)
        elif default is dataclasses.MISSING or value != default:
            out.append((f"{prefix}{f.name}", value))
    return out


def _plain(value: Any) -> Any:
    """An option group as its dict of fields (for the cache key), any other value as it is."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
