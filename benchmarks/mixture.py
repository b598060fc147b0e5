"""What a training config's data mixture feeds the model, per task: shares of samples, tokens and loss tokens.

    python -m benchmarks.mixture --config experiments/demo/pretrain.yaml
    python -m benchmarks.mixture --config experiments/demo/pretrain.yaml experiments/demo/ablations/asr_only.yaml

Sampling rates are per sample and samples differ in length and in how many of their tokens carry loss (a transcript
is ~9 loss tokens after ~70 speech tokens, generated speech ~60), so the rates in a config say little about where the
gradient goes. This draws the config's own training stream (its data module, seed and packing; nothing is trained) and
counts, per task (a pair's modality and direction, dialogues, documents), what actually arrives.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning import LightningDataModule

from anygpt.data.datamodule import AnyGPTDataModule
from anygpt.prompts import Rendered, TemplateRenderer


def data_config(paths: Sequence[Path]) -> dict[str, Any]:
    """The ``data`` section of configs read in order (later ``init_args`` keys replace earlier ones)."""
    merged: dict[str, Any] = {}
    for path in paths:
        section = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
        merged["class_path"] = section.get("class_path", merged.get("class_path"))
        merged["init_args"] = {**merged.get("init_args", {}), **(section.get("init_args") or {})}
    if not merged.get("class_path"):
        raise ValueError(f"{', '.join(map(str, paths))}: no data.class_path")
    return merged


def build_data(config: dict[str, Any]) -> AnyGPTDataModule:
    """The configured data module (an `AnyGPTDataModule` subclass, as `anygpt fit` would build it)."""
    module, _, name = config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, AnyGPTDataModule)):
        raise TypeError(f"data.class_path {config['class_path']} is not an AnyGPTDataModule: the mixture is read from "
                        "its training stream")
    data: LightningDataModule = cls(**config["init_args"])
    data.prepare_data()
    data.setup("fit")
    return data  # type: ignore[return-value]


class Tally:
    """Wraps a renderer's `render` and counts samples, tokens and loss tokens per task (`Rendered.task`)."""

    def __init__(self, renderer: TemplateRenderer) -> None:
        self.samples: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self.loss: Counter[str] = Counter()
        render = renderer.render

        def counted(*args: Any, **kwargs: Any) -> Rendered:
            out = render(*args, **kwargs)
            self.samples[out.task] += 1
            self.tokens[out.task] += len(out.ids)
            self.loss[out.task] += sum(out.mask)
            return out

        renderer.render = counted  # type: ignore[method-assign]

    def table(self) -> str:
        total = {name: sum(c.values()) or 1 for name, c in (("s", self.samples), ("t", self.tokens), ("l", self.loss))}
        lines = ["| task | samples | share of samples | share of tokens | share of loss tokens | loss tokens per "
                 "sample |", "|---|---|---|---|---|---|"]
        for task in sorted(self.samples, key=lambda t: -self.loss[t]):
            lines.append(f"| {task} | {self.samples[task]} | {self.samples[task] / total['s']:.1%} | "
                         f"{self.tokens[task] / total['t']:.1%} | {self.loss[task] / total['l']:.1%} | "
                         f"{self.loss[task] / self.samples[task]:.1f} |")
        return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, nargs="+", required=True, help="the training config (and overlays)")
    parser.add_argument("--batches", type=int, default=500, help="training batches to draw (default: 500)")
    args = parser.parse_args(argv)
    data = build_data(data_config(args.config))
    tally = Tally(data.renderer)
    loader = data.train_dataloader()
    for i, _ in enumerate(loader):
        if i + 1 >= args.batches:
            break
    print(f"{args.batches} training batches of {', '.join(map(str, args.config))} (samples cut by packing counted "
          "whole):\n")
    print(tally.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
