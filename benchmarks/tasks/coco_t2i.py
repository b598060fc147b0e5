"""Text-to-image on MS-COCO val captions, scored with the CLIP score (cosine of CLIP image and text embeddings; the
paper: 0.65 with CLIP ViT-L on 30k random val captions, top-p 0.7).

Baseline (same metric, same run): the generated images scored against shuffled captions (each image paired with
another item's caption). Reference: the real val images against their captions.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from anygpt.data.templates import TEXT2X_INSTRUCTIONS
from benchmarks.judges import load_judge
from benchmarks.metrics import CLIPScore
from benchmarks.tasks.coco_caption import read_split
from benchmarks.tasks.runner import (
    Evaluation,
    Prediction,
    Row,
    TaskArgs,
    compute,
    data_root,
    derangement,
    read_image,
    sample_rows,
)

TASK = "coco-t2i"


def run(ckpt: str | None = None, data: Path | None = None,
        limit: int | None = 30000, batch_size: int = 8, devices: int = 1,
        accelerator: str = "auto", out: Path | None = None, judge: str | None = None,
        judge_options: dict[str, Any] | None = None, seed: int = 0, settings: str = "paper",
        generation: dict[str, Any] | None = None, template: str = "pretrain", baseline: bool = True,
        report_samples: int = 12, tokenizers: dict[str, str] | None = None,
        trust_code: bool = False, compile: bool | None = None, image_root: Path | None = None,
        split: str = "test", instruction: str = TEXT2X_INSTRUCTIONS["image"][0]) -> dict[str, Any]:
    """Generate an image for each of N random captions (of --split) and score CLIP(image, caption).

    Args:
        ckpt: AnyGPT folder, released AnyGPT folder or Lightning .ckpt.
        data: dataset root holding coco/dataset_coco.json (or the json itself); default: the demo corpus.
        limit: number of random captions (the paper: 30000).
        batch_size: prompts decoded together.
        devices: processes (one per device); items are sharded over them.
        accelerator: "auto", "cpu", "gpu".
        out: output folder (default runs/benchmarks/coco-t2i).
        judge: CLIP judge: an open_clip folder, or a checkpoint file with judge_options {"model_name": "ViT-L-14"};
            default: the tiny CLIP shipped with anygpt.
        judge_options: extra options for the judge (model_name).
        seed: seed for the caption sample, sampling and the baseline.
        settings: decoding preset family ("paper": top-p 0.7).
        generation: overrides of the decoding preset.
        template: "pretrain" or "chat".
        baseline: also score shuffled (image, caption) pairs.
        report_samples: items shown in report.html.
        tokenizers: modality -> tokenizer checkpoint, overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        compile: torch.compile the decode step (true/false); default: on CUDA only.
        image_root: folder the json's paths are relative to.
        split: Karpathy split(s) the captions come from, comma-separated. Default "test" (the demo's held-out
            images); the paper's pool of 30k random val2014 captions is "val,test,restval" (all of val2014).
        instruction: the text-to-image instruction.
    """
    root = data_root(data)
    args = TaskArgs(TASK, ckpt, root, limit, batch_size, devices, accelerator, out, judge, judge_options, seed,
                    settings, generation, template, baseline, report_samples, tokenizers, trust_code, compile)
    splits = tuple(s.strip() for s in split.split(","))
    pairs = [(im, k, c) for im in read_split(root, splits, image_root) for k, c in enumerate(im.captions)]
    random.Random(seed).shuffle(pairs)
    pairs = pairs[:limit]
    ev = Evaluation(args, needs=["image"], output="image")
    keys = [f"{im.image_id}-{k}" for im, k, _ in pairs]
    captions = [c for _, _, c in pairs]

    def make(indices: list[int], generator) -> list[Prediction]:
        prompts = [ev.prompt(instruction, [captions[i]], "text2x") for i in indices]
        return ev.media_predictions([keys[i] for i in indices], prompts, generator)

    preds = ev.predict(keys, make, "text-to-image")
    clip = load_judge("clip", judge, device=ev.fabric.device, **(judge_options or {}))
    mine = [i for i in ev.shard(len(pairs)) if not preds[i].empty]

    def score(images: list, texts: list[str]) -> float | None:
        metric = ev.metric(CLIPScore(clip.model, preprocess=clip.preprocess, tokenizer=clip.tokenizer))
        metric.update(images, texts)
        return compute(metric)

    generated = {i: read_image(preds[i].path) for i in mine}
    value = score([generated[i] for i in mine], [captions[i] for i in mine])
    n_empty = sum(p.empty for p in preds)
    base, notes = None, []
    if n_empty:
        notes.append(f"{n_empty} caption(s) got no decodable image; the CLIP score averages the other "
                     f"{len(pairs) - n_empty}")
    perm = derangement(len(pairs), seed)
    if baseline:
        if perm is None:
            base = {"values": None, "description": "shuffled pairs need at least 2 items"}
        else:
            base = {"values": {"clip_score": score([generated[i] for i in mine], [captions[perm[i]] for i in mine])},
                    "description": "the generated images scored against shuffled captions (another item's)"}
    reference = {"values": {"clip_score": score([read_image(pairs[i][0].path) for i in ev.shard(len(pairs))],
                                                [captions[i] for i in ev.shard(len(pairs))])},
                 "description": "the real images scored against their own captions"}
    rows = [Row().add("caption", captions[i]).add("generated image", preds[i].path, "image")
            .add("real image", pairs[i][0].path, "image").add("note", preds[i].note or "")
            for i in sample_rows(len(pairs), report_samples)]
    return ev.finish("clip_score", {"clip_score": value}, len(pairs), n_empty, clip.description, base, rows, notes,
                     reference)
