"""What a task's ``score`` returns (`Scored`), the bootstrap of it into results, and scoring helpers tasks share.

A task turns its per-item results into statistics (`benchmarks.stats`) for the model, each baseline and the reference
(real pairs: the judge's ceiling). `estimate` gives every value a 95% bootstrap interval on shared redraws and each
model - baseline difference a paired one; "beats" is claimed only when that interval excludes zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks import stats
from benchmarks.metrics.frechet import frechet_block
from benchmarks.tasks.items import Prediction
from benchmarks.tasks.report import Row

WORST_COSINE = -1.0  # the score of a missing image/clip/utterance under a cosine metric (CLIP, CLAP, speaker sim.)


@dataclass
class System:
    """What one system (a baseline, the reference) scores on the n items, as statistics to bootstrap."""

    description: str
    metrics: dict[str, stats.Statistic]


@dataclass
class Scored:
    """A task's scores of the model, its baselines and the reference, before the bootstrap.

    Args:
        model: metric -> the model's statistic (the task's headline ``metric`` among them).
        judge: what scored (the judge model, or "none (...)" for reference-based metrics).
        baselines: name -> a system a useless model would be (same metrics, same items).
        reference: the judge on real pairs (its ceiling), when the task has one.
        failed_as: how a failed generation was scored (named in the results' notes).
        notes: lines for the results and report (e.g. a baseline left out and why).
        extra: item index -> {label: value}, shown in the report's sample rows.
        set_distances: key -> a `frechet_block` (FD/FID/FAD of the generated, baseline and half-real sets; no
            interval, read against its floor and n).
    """

    model: dict[str, stats.Statistic]
    judge: str
    baselines: dict[str, System] = field(default_factory=dict)
    reference: System | None = None
    failed_as: str = "empty output"
    notes: list[str] = field(default_factory=list)
    extra: dict[int, dict[str, Any]] = field(default_factory=dict)
    set_distances: dict[str, dict[str, Any]] = field(default_factory=dict)


def estimate(scored: Scored, n: int, higher_is_better: Mapping[str, bool], resamples: int, seed: int
             ) -> dict[str, Any]:
    """Values, intervals and paired differences of everything in ``scored``, on shared redraws: the ``metrics``,
    ``baselines`` and ``reference`` blocks of results.json."""
    statistics: dict[str, stats.Statistic] = {f"model/{m}": s for m, s in scored.model.items()}
    differences: dict[str, tuple[str, str]] = {}
    for name, system in scored.baselines.items():
        for metric, stat in system.metrics.items():
            statistics[f"{name}/{metric}"] = stat
            if metric in scored.model:
                differences[f"{name}/{metric}/difference"] = (f"model/{metric}", f"{name}/{metric}")
    if scored.reference is not None:
        for metric, stat in scored.reference.metrics.items():
            statistics[f"reference/{metric}"] = stat
    est = stats.bootstrap_all(statistics, n, resamples=resamples, seed=seed, differences=differences)

    def block(prefix: str, metrics: Sequence[str]) -> dict[str, Any]:
        return {m: {**est[f"{prefix}/{m}"].to_dict(), "higher_is_better": higher_is_better[m]} for m in metrics}

    baselines = {}
    for name, system in scored.baselines.items():
        diffs = {m: stats.Comparison(est[f"{name}/{m}/difference"],
                                     stats.beats(est[f"{name}/{m}/difference"], higher_is_better[m])).to_dict()
                 for m in system.metrics if m in scored.model}
        baselines[name] = {"description": system.description, "metrics": block(name, list(system.metrics)),
                           "difference": diffs}
    reference = None
    if scored.reference is not None:
        reference = {"description": scored.reference.description,
                     "metrics": block("reference", list(scored.reference.metrics))}
    return {"metrics": block("model", list(scored.model)), "baselines": baselines, "reference": reference}


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


def cosines(a: np.ndarray, b: np.ndarray, failed: Sequence[bool] | None = None) -> np.ndarray:
    """Row-wise cosine of L2-normalised embeddings; rows marked ``failed`` get the worst score."""
    out = (np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)).sum(axis=1)
    if failed is not None:
        out[np.asarray(failed, dtype=bool)] = WORST_COSINE
    return out


def embed_in_batches(embed: Callable[[list[Any]], torch.Tensor], inputs: Mapping[int, Any],
                     batch_size: int) -> dict[int, np.ndarray]:
    """{index: embedding} of ``inputs`` ({index: input}), ``batch_size`` at a time (media are read per batch). The
    embeddings are rows of one matrix (one allocation, not one per item)."""
    order = list(inputs)
    matrix: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        emb = embed([inputs[i] for i in batch]).float().cpu().numpy()
        if matrix is None:
            matrix = np.empty((len(order), *emb.shape[1:]), dtype=np.float32)
        matrix[start:start + len(batch)] = emb
    return {} if matrix is None else dict(zip(order, matrix, strict=True))


def score_text_to_media(task: Any, items: Sequence[Any], preds: Sequence[Prediction], embed_text: Callable,
                        embed_media: Callable, picks: Sequence[Any] | None, media: str, metric: str, judge: str,
                        failed_as: str, notes: Sequence[str] = (), distance: str | None = None) -> Scored | None:
    """Score media generated from captions (coco-t2i, musiccaps-gen) by the judge's cosine to the caption, in
    batches of embeddings. Baselines: the generated media against other items' captions (chance) and, given
    ``picks`` (a training file per item), real training media; reference: the real media (``items[i].path``).
    Failed generations score the worst cosine. Given ``distance`` (its name), also the Fréchet distance of the same
    embeddings (``set_distances["fd_judge"]``). ``task`` is the running task (its sharding, ``batch_size``, ``seed``,
    ``baseline``, ``device``). Returns the scores on rank 0, None on the others."""
    n, mine, bs = len(items), task.shard(len(items)), task.batch_size
    texts = embed_in_batches(embed_text, {i: items[i].caption for i in mine}, bs)
    generated = embed_in_batches(embed_media, {i: preds[i].path for i in mine if not preds[i].empty}, bs)
    real = embed_in_batches(embed_media, {i: items[i].path for i in mine}, bs)
    train = embed_in_batches(embed_media, {i: picks[i] for i in mine}, bs) if picks else {}
    distances = {}
    if distance:
        dim = next(iter(real.values())).shape[-1] if real else embed_media([items[0].path]).shape[-1]
        base = {f"random-train-{media}": (f"a random real training {media} per item", train)} if picks else {}
        distances["fd_judge"] = frechet_block(
            distance, f"the judge's {media} embeddings (L2-normalised)", dim, real, generated, base, n,
            sum(p.empty for p in preds), task.seed, device=task.device, groups=[str(it.path) for it in items])
    gathered = task.gather({i: (texts[i], generated.get(i), real[i], train.get(i)) for i in mine}, n)
    if not task.is_main:
        return None
    text, real_emb = np.stack([g[0] for g in gathered]), np.stack([g[2] for g in gathered])
    failed = [g[1] is None for g in gathered]
    gen = np.stack([g[1] if g[1] is not None else np.zeros_like(g[0]) for g in gathered])
    baselines = {}
    perm = derangement(n, task.seed) if task.baseline else None
    if perm is not None:
        baselines["shuffled"] = System(f"the generated {media}s scored against other items' captions (chance)",
                                       {metric: stats.mean_of(cosines(gen, text[perm], failed))})
    if picks:
        baselines[f"random-train-{media}"] = System(
            f"a random real training {media} for each caption",
            {metric: stats.mean_of(cosines(np.stack([g[3] for g in gathered]), text))})
    return Scored(model={metric: stats.mean_of(cosines(gen, text, failed))}, judge=judge, baselines=baselines,
                  reference=System(f"the real {media}s scored against their own captions",
                                   {metric: stats.mean_of(cosines(real_emb, text))}),
                  failed_as=failed_as, notes=list(notes),
                  extra={i: {f"baseline {media}": picks[i]} for i in range(n)} if picks else {},
                  set_distances=distances)


def features_block(task: Any, name: str, extractor: Any, items: Sequence[Any], preds: Sequence[Prediction],
                   picks: Sequence[Any] | None, baseline: tuple[str, str], groups: Sequence[str] | None = None
                   ) -> dict[str, Any]:
    """The Fréchet distance on ``extractor``'s features (``embed_files``: FID, FAD) of the generated set, the
    ``baseline`` (name, description) set of training ``picks`` and two real halves, against the real items."""
    mine = task.shard(len(items))
    base = {baseline[0]: (baseline[1], {i: picks[i] for i in mine})} if picks else {}
    return frechet_block(name, extractor.description, extractor.num_features, {i: items[i].path for i in mine},
                         {i: preds[i].path for i in mine if not preds[i].empty}, base, len(items),
                         sum(p.empty for p in preds), task.seed, embed=extractor.embed_files,
                         batch_size=task.batch_size, device=task.device, groups=groups)


def text_to_media_rows(items: Sequence[Any], preds: Sequence[Prediction], extra: Mapping[int, Mapping[str, Any]],
                       indices: Sequence[int], modality: str, media: str) -> list[Row]:
    """Report rows of a `score_text_to_media` task: caption, generated and real media, the baseline's pick."""
    rows = []
    for i in indices:
        row = Row().text("caption", items[i].caption).media(f"generated {modality}", preds[i].path, modality)
        row.media(f"real {media}", items[i].path, modality)
        if extra:
            row.media(f"random training {media} (baseline)", extra[i][f"baseline {media}"], modality)
        rows.append(row.text("note", preds[i].note or ""))
    return rows
