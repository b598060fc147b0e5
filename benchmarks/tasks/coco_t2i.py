"""Text-to-image on MS-COCO captions, scored with the CLIP score (cosine of CLIP image and text embeddings; the
paper: 0.65 with CLIP ViT-L on 30k random val captions, top-p 0.7).

Baselines (same metric, same run, same redraws):
- ``shuffled``: the generated images scored against other items' captions (the judge's chance level, a floor);
- ``random-train-image``: a real random *training* image for each caption (what returning any real photo gets).
Reference (ceiling): the real image of each caption. A caption that got no decodable image scores -1 (the worst
cosine) and is counted in ``n_failed``.

Set distances (lower is better; no interval, read against the real-halves floor and n; failed images left out):
``FD (tiny CLIP judge features)`` (or ``FD (CLIP judge features)`` with ``--judge``) on the judge's image embeddings,
and with ``--fid_weights`` FID on torchmetrics' Inception-v3 features, each for the generated images, the
random-training-image baseline and two halves of the real images (split by image file), against the real images.

Memory stays bounded at any size: generated images are written to disk as they are made and every image is read and
embedded ``batch_size`` at a time; only embeddings are kept.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anygpt.data.sources.base import DatasetError
from anygpt.prompts import TEXT2X_INSTRUCTIONS
from benchmarks.judges import load_judge
from benchmarks.judges.inception import InceptionFeatures
from benchmarks.metrics import CLIPScore
from benchmarks.tasks.base import Prediction, Row, Scored, Task, option
from benchmarks.tasks.coco_caption import read_split, splits
from benchmarks.tasks.scoring import features_block, score_text_to_media, text_to_media_rows


@dataclass
class CaptionItem:
    """One caption to draw, with the real image it describes."""

    key: str
    caption: str
    path: Path  # the real image


@dataclass
class CocoT2i(Task):
    """Generate an image for each of N random captions and score CLIP(image, caption).

    Args:
        limit: number of random captions (the paper: 30000).
        image_root: folder the json's paths are relative to.
        split: Karpathy split(s) the captions come from, comma-separated. Default "test" (the demo's held-out
            images); the paper's pool of 30k random val2014 captions is "val,test,restval" (all of val2014).
        train_split: Karpathy split(s) of the random-training-image baseline, comma-separated.
        instruction: the text-to-image instruction.
        fid_weights: torch-fidelity's Inception-v3 weights file (pt_inception-2015-12-05-6726825d.pth): also report
            FID against the real images.
    """

    name = "coco-t2i"
    needs = ("image",)
    output = "image"
    metric = "clip_score"
    higher_is_better = {"clip_score": True}

    limit: int | None = option(30000, cache=False)
    image_root: Path | None = option(None)
    split: str = option("test")
    train_split: str = option("train,restval", cache=False)
    instruction: str = option(TEXT2X_INSTRUCTIONS["image"][0])
    fid_weights: Path | None = option(None, cache=False)

    def read_items(self, root: Path) -> list[CaptionItem]:
        pairs = [CaptionItem(f"{im.image_id}-{k}", c, im.path)
                 for im in read_split(root, splits(self.split), self.image_root) for k, c in enumerate(im.captions)]
        random.Random(self.seed).shuffle(pairs)
        return pairs[: self.limit]

    def keys(self, items) -> list[str]:
        return [it.key for it in items]

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [it.caption], "text2x") for it in items]
        return self.media_predictions(keys, prompts, generator)

    def score(self, items, preds) -> Scored | None:
        clip = load_judge("clip", self.judge, device=self.device, **(self.judge_options or {}))
        metric = CLIPScore(clip.model, preprocess=clip.preprocess, tokenizer=clip.tokenizer,
                           batch_size=self.batch_size).to(self.device)
        rng = random.Random(self.seed)
        notes: list[str] = []
        train = []
        if self.baseline:
            try:
                train = read_split(self.root, splits(self.train_split), self.image_root)
            except DatasetError as err:
                notes.append(f"no random-train-image baseline: {err} (give --train_split)")
        picks = [rng.choice(train).path for _ in items] if train else None
        name = "FD (tiny CLIP judge features)" if self.judge is None else "FD (CLIP judge features)"
        scored = score_text_to_media(self, items, preds, metric.embed_texts, metric.embed_images, picks, "image",
                                     "clip_score", judge=clip.description, failed_as="the worst CLIP score, -1",
                                     notes=notes, distance=name)
        if self.fid_weights is not None:
            fid = features_block(self, "FID (Inception-v3)", InceptionFeatures(self.fid_weights, self.device), items,
                                 preds, picks, ("random-train-image", "a random real training image per caption"),
                                 groups=[str(it.path) for it in items])
            if scored is not None:
                scored.set_distances["fid"] = fid
        return scored

    def report_rows(self, items, preds, extra: Mapping[int, Mapping[str, Any]], indices) -> list[Row]:
        return text_to_media_rows(items, preds, extra, indices, "image", "image")
