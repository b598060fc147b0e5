"""Image captioning on the MS-COCO Karpathy test split, scored with CIDEr-D (the paper: 107.5, beam search 5).

Baseline (same metric, same run, same redraws): each test image gets a caption of a random training image.
The interval recomputes CIDEr-D on each redraw of the test images (document frequencies from the redrawn references).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anygpt.data.sources.base import DatasetError
from anygpt.data.sources.coco import read_coco_karpathy
from anygpt.generation.pipeline import Media
from anygpt.prompts import X2TEXT_INSTRUCTIONS
from benchmarks.metrics import CIDEr
from benchmarks.metrics.cider import CiderD
from benchmarks.tasks.base import Prediction, Row, Scored, System, Task, locate, option

KARPATHY = ("coco/dataset_coco.json", "dataset_coco.json", "annotations/dataset_coco.json")


def read_split(data: Path, split: Sequence[str], image_root: Path | None) -> list:
    json_path = locate(data, KARPATHY, "Karpathy split json (dataset_coco.json)")
    items = list(read_coco_karpathy(json_path, image_root, tuple(split)))
    if not items:
        raise DatasetError(f"{json_path} has no images in split {'/'.join(split)}")
    return items


def splits(text: str) -> tuple[str, ...]:
    """"train,restval" -> ("train", "restval")."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


@dataclass
class CocoCaption(Task):
    """Caption the Karpathy test images and score CIDEr-D (pycocoevalcap's, PTB-tokenized).

    Args:
        image_root: folder the json's filepath/filename are relative to (default: the json's folder).
        split: Karpathy split to evaluate.
        train_split: Karpathy split(s) the baseline's captions come from, comma-separated.
        cider_tokenizer: "java" (the COCO PTB tokenizer, exact), "python" (approximation, no JVM) or "none".
        instruction: the captioning instruction.
    """

    name = "coco-caption"
    needs = ("image",)
    output = "text"
    metric = "cider"
    higher_is_better = {"cider": True}

    image_root: Path | None = option(None)
    split: str = option("test")
    train_split: str = option("train,restval", cache=False)
    cider_tokenizer: str = option("java", cache=False)
    instruction: str = option(X2TEXT_INSTRUCTIONS["image"][0])

    def read_items(self, root: Path) -> list:
        return read_split(root, splits(self.split), self.image_root)[: self.limit]

    def keys(self, items: Sequence[Any]) -> list[str]:
        return [str(it.image_id) for it in items]

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [Media("image", it.path)], "x2text") for it in items]
        return self.text_predictions(keys, prompts, generator)

    def score(self, items, preds) -> Scored | None:
        if not self.is_main:  # CIDEr-D is corpus-level: rank 0 scores the gathered captions
            return None
        refs = [it.captions for it in items]
        systems = {"model": [p.text for p in preds]}
        notes = []
        if self.baseline:
            try:
                train = read_split(self.root, splits(self.train_split), self.image_root)
                rng = random.Random(self.seed)
                systems["random-train-caption"] = [rng.choice(rng.choice(train).captions) for _ in items]
            except DatasetError as err:
                notes.append(f"no random-train-caption baseline: {err} (give --train_split)")
        # one tokenizer call (one JVM start) for every caption
        tokenizer = CIDEr(tokenizer=self.cider_tokenizer)
        flat = [c for captions in systems.values() for c in captions] + [r for rs in refs for r in rs]
        tokens = iter(tokenizer.tokenize(flat))
        tokenized = {name: [next(tokens) for _ in captions] for name, captions in systems.items()}
        tok_refs = [[next(tokens) for _ in rs] for rs in refs]
        baselines, extra = {}, {}
        if "random-train-caption" in systems:
            baselines["random-train-caption"] = System(
                "a caption of a random training image for each test image",
                {"cider": CiderD(tokenized["random-train-caption"], tok_refs)})
            extra = {i: {"baseline caption": caption} for i, caption in enumerate(systems["random-train-caption"])}
        return Scored(model={"cider": CiderD(tokenized["model"], tok_refs)}, baselines=baselines,
                      judge=f"none (CIDEr-D, {self.cider_tokenizer} PTB tokenizer)", failed_as="an empty caption",
                      notes=notes, extra=extra)

    def report_rows(self, items, preds, extra: Mapping[int, Mapping[str, Any]], indices) -> list[Row]:
        return [Row().media("image", items[i].path, "image").text("generated caption", preds[i].text)
                .text("baseline caption", extra.get(i, {}).get("baseline caption", ""))
                .text("references", items[i].captions) for i in indices]

