"""Image captioning on the MS-COCO Karpathy test split, scored with CIDEr (the paper: 107.5, beam search 5).

Baseline (same metric, same run): each test image gets a caption of a random training image.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from anygpt.data.readers import DatasetError, read_coco_karpathy
from anygpt.data.templates import X2TEXT_INSTRUCTIONS
from anygpt.generation.pipeline import Media
from benchmarks.metrics import CIDEr
from benchmarks.tasks.runner import Evaluation, Prediction, Row, TaskArgs, compute, data_root, locate, sample_rows

TASK = "coco-caption"
KARPATHY = ("coco/dataset_coco.json", "dataset_coco.json", "annotations/dataset_coco.json")


def read_split(data: Path, split: tuple[str, ...], image_root: Path | None) -> list:
    json_path = locate(data, KARPATHY, "Karpathy split json (dataset_coco.json)")
    items = list(read_coco_karpathy(json_path, image_root, split))
    if not items:
        raise DatasetError(f"{json_path} has no images in split {'/'.join(split)}")
    return items


def run(ckpt: str | None = None, data: Path | None = None,
        limit: int | None = None, batch_size: int = 8, devices: int = 1,
        accelerator: str = "auto", out: Path | None = None, judge: str | None = None, seed: int = 0,
        settings: str = "paper", generation: dict[str, Any] | None = None, template: str = "pretrain",
        baseline: bool = True, report_samples: int = 12, tokenizers: dict[str, str] | None = None,
        trust_code: bool = False, compile: bool | None = None,
        image_root: Path | None = None, split: str = "test", cider_tokenizer: str = "java",
        instruction: str = X2TEXT_INSTRUCTIONS["image"][0]) -> dict[str, Any]:
    """Caption the Karpathy test images and score CIDEr-D (pycocoevalcap's, PTB-tokenized).

    Args:
        ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
        data: dataset root holding coco/dataset_coco.json (or the json itself); default: the demo corpus.
        limit: evaluate the first N test images only.
        batch_size: prompts decoded together.
        devices: processes (one per device); items are sharded over them.
        accelerator: "auto", "cpu", "gpu".
        out: output folder (default runs/benchmarks/coco-caption).
        judge: unused (CIDEr needs no judge model); accepted for a uniform command line.
        seed: seed for sampling and the baseline.
        settings: decoding preset family ("paper": beam 5; "release": sampling).
        generation: overrides of the decoding preset, e.g. {"num_beams": 1, "max_new_tokens": 40}.
        template: "pretrain" (pretraining pair template) or "chat" (release chat template).
        baseline: also score captions of random training images.
        report_samples: items shown in report.html.
        tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        compile: torch.compile the decode step (true/false); default: on CUDA only.
        image_root: folder the json's filepath/filename are relative to (default: the json's folder).
        split: Karpathy split to evaluate.
        cider_tokenizer: "java" (the COCO PTB tokenizer, exact), "python" (approximation, no JVM) or "none".
        instruction: the captioning instruction.
    """
    root = data_root(data)
    args = TaskArgs(TASK, ckpt, root, limit, batch_size, devices, accelerator, out, judge, None, seed, settings,
                    generation, template, baseline, report_samples, tokenizers, trust_code, compile)
    items = read_split(root, (split,), image_root)[:limit]
    ev = Evaluation(args, needs=["image"], output="text")
    keys = [str(it.image_id) for it in items]

    def make(indices: list[int], generator) -> list[Prediction]:
        prompts = [ev.prompt(instruction, [Media("image", items[i].path)], "x2text") for i in indices]
        return ev.text_predictions([keys[i] for i in indices], prompts, generator)

    preds = ev.predict(keys, make, "captioning")
    mine = ev.shard(len(items))
    cider = ev.metric(CIDEr(tokenizer=cider_tokenizer))
    cider.update([preds[i].text for i in mine], [items[i].captions for i in mine])
    value = compute(cider)

    base = None
    if baseline:
        train = read_split(root, ("train", "restval"), image_root)
        rng = random.Random(seed)
        picks = [rng.choice(rng.choice(train).captions) for _ in items]
        metric = ev.metric(CIDEr(tokenizer=cider_tokenizer))
        metric.update([picks[i] for i in mine], [items[i].captions for i in mine])
        base = {"values": {"cider": compute(metric)},
                "description": "a caption of a random training image for each test image"}
    rows = [Row().add("image", items[i].path, "image").add("generated caption", preds[i].text)
            .add("baseline caption", picks[i] if baseline else "").add("references", items[i].captions)
            for i in sample_rows(len(items), report_samples)]
    return ev.finish("cider", {"cider": value}, len(items), sum(p.empty for p in preds),
                     f"none (CIDEr-D, {cider_tokenizer} PTB tokenizer)", base, rows)
