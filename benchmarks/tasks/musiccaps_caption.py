"""Music captioning on MusicCaps, scored with the CLAP score between the music and the generated caption (the paper:
0.11; real captions 0.16). Decoding: the paper's text setting (beam search 5).

Baselines (same metric, same run, same redraws):
- ``shuffled``: the generated captions scored against other items' clips (the judge's chance level, a floor);
- ``random-train-caption``: the caption of a random *training* clip for each clip (what any fluent music caption
  gets).
Reference (ceiling): the clips against their own MusicCaps captions. Clips are read and embedded ``batch_size`` at a
time; only embeddings are kept.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anygpt.data.sources.base import DatasetError
from anygpt.data.sources.musiccaps import read_musiccaps
from anygpt.generation.pipeline import Media
from anygpt.media import read_audio_with_rate
from anygpt.prompts import X2TEXT_INSTRUCTIONS
from benchmarks.judges import load_judge
from benchmarks.metrics import CLAPScore
from benchmarks.stats import mean_of
from benchmarks.tasks.base import Prediction, Row, Scored, System, Task, locate, option
from benchmarks.tasks.scoring import cosines, derangement, embed_in_batches

CSV = ("musiccaps/musiccaps.csv", "musiccaps.csv", "musiccaps/musiccaps-public.csv", "musiccaps-public.csv")


def read_clips(data: Path, split: str, audio_dir: Path | None, limit: int | None = None) -> list:
    csv_path = locate(data, CSV, "MusicCaps csv")
    clips = list(read_musiccaps(csv_path, audio_dir, split))[:limit]
    if not clips:
        raise DatasetError(f"{csv_path} has no clips in split {split!r} with audio")
    return clips


def random_training_picks(task: Task, items: Sequence[Any], baseline: str, notes: list[str]) -> list[Any] | None:
    """For each evaluated item a random clip of the task's ``train_split`` with another id; None without baselines or
    when the split offers none (a split that cannot be read is noted as the missing ``baseline``)."""
    if not task.baseline:
        return None
    try:
        train = read_clips(task.root, task.train_split, task.audio_dir)
    except DatasetError as err:
        notes.append(f"no {baseline} baseline: {err}")
        return None
    rng = random.Random(task.seed)
    picks = []
    for item in items:
        for _ in range(100):
            pick = rng.choice(train)
            if pick.ytid != item.ytid:
                picks.append(pick)
                break
        else:
            return None
    return picks


def clap_metric(task: Task) -> tuple[Any, CLAPScore]:
    judge = load_judge("clap", task.judge, device=task.device, **(task.judge_options or {}))
    return judge, CLAPScore(judge).to(task.device)


def audio_file_embedder(metric: CLAPScore):
    """paths -> CLAP embeddings [N, D], reading each batch of files (at whatever rates they have) when it is due."""

    def embed(paths: Sequence[str | Path]) -> torch.Tensor:
        wavs = [read_audio_with_rate(p) for p in paths]
        out: list[torch.Tensor | None] = [None] * len(wavs)
        for rate in sorted({r for _, r in wavs}):
            idx = [k for k, (_, r) in enumerate(wavs) if r == rate]
            for k, e in zip(idx, metric.embed_audio([wavs[k][0] for k in idx], rate), strict=True):
                out[k] = e
        return torch.stack(out)  # type: ignore[arg-type]

    return embed


@dataclass
class MusiccapsCaption(Task):
    """Caption MusicCaps clips with the model and score CLAP(music, generated caption).

    Args:
        audio_dir: folder of the clips (default: audio/ beside the csv).
        split: the csv's split column value, or "test" = is_audioset_eval for the original csv.
        train_split: the split whose captions give the random-training-caption baseline ("train" = the rows
            that are not is_audioset_eval for the original csv).
        instruction: the captioning instruction.
    """

    name = "musiccaps-caption"
    needs = ("music",)
    output = "text"
    metric = "clap_score"
    higher_is_better = {"clap_score": True}

    audio_dir: Path | None = option(None)
    split: str = option("test")
    train_split: str = option("train", cache=False)
    instruction: str = option(X2TEXT_INSTRUCTIONS["music"][0])

    def read_items(self, root: Path) -> list:
        return read_clips(root, self.split, self.audio_dir, self.limit)

    def keys(self, items) -> list[str]:
        return [c.ytid for c in items]

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [Media("music", c.path)], "x2text") for c in items]
        return self.text_predictions(keys, prompts, generator)

    def score(self, items, preds) -> Scored | None:
        judge, metric = clap_metric(self)
        n, mine, bs = len(items), self.shard(len(items)), self.batch_size
        notes: list[str] = []
        picks = random_training_picks(self, items, "random-train-caption", notes)
        audio = embed_in_batches(audio_file_embedder(metric), {i: items[i].path for i in mine}, bs)
        generated = embed_in_batches(metric.embed_texts, {i: preds[i].text for i in mine}, bs)
        real = embed_in_batches(metric.embed_texts, {i: items[i].caption for i in mine}, bs)
        train = embed_in_batches(metric.embed_texts, {i: picks[i].caption for i in mine}, bs) if picks else {}
        gathered = self.gather({i: (audio[i], generated[i], real[i], train.get(i)) for i in mine}, n)
        if not self.is_main:
            return None
        clip_emb, gen, real_text = (np.stack([g[k] for g in gathered]) for k in range(3))
        baselines = {}
        perm = derangement(n, self.seed) if self.baseline else None
        if perm is not None:
            baselines["shuffled"] = System("the generated captions scored against other items' clips (chance)",
                                           {"clap_score": mean_of(cosines(gen, clip_emb[perm]))})
        if picks:
            baselines["random-train-caption"] = System(
                "the caption of a random training clip for each clip",
                {"clap_score": mean_of(cosines(np.stack([g[3] for g in gathered]), clip_emb))})
        extra = {i: {"baseline caption": picks[i].caption} for i in range(n)} if picks else {}
        return Scored(model={"clap_score": mean_of(cosines(gen, clip_emb))}, baselines=baselines,
                      reference=System("the clips scored against their own MusicCaps captions",
                                       {"clap_score": mean_of(cosines(real_text, clip_emb))}),
                      judge=judge.description, failed_as="an empty caption", notes=notes, extra=extra)

    def report_rows(self, items, preds, extra: Mapping[int, Mapping[str, Any]], indices) -> list[Row]:
        return [Row().media("music", items[i].path, "music").text("generated caption", preds[i].text)
                .text("random training caption (baseline)", extra.get(i, {}).get("baseline caption", ""))
                .text("reference caption", items[i].caption) for i in indices]

