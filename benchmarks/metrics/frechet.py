"""Fréchet distance between two sets of feature vectors (FID on Inception-v3 features, FAD on audio embeddings, or
any judge's embeddings), as a torchmetrics `Metric` that scales: it keeps per set only the count, the sum and the sum
of outer products in float64 (D + D*D numbers), never the features, and sums them across processes.

    d = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

with unbiased covariances (divided by n - 1), as torchmetrics' `FrechetInceptionDistance` and torch-fidelity define
it. A set distance has no per-item values, so no bootstrap over items: it is read against a floor computed in the same
run, the distance between two random halves of the real set (`frechet_block`), and stated with its n (the distance is
biased upwards for small n, which is why the floor and the n matter).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

SETS = ("real", "generated")


class FrechetDistance(Metric):
    """Fréchet distance between the "real" and the "generated" set of ``num_features``-dimensional features.

    ``update(features, real=True)`` adds rows of ``features`` [N, D] to the real set, ``real=False`` to the generated
    one; ``compute()`` returns {"distance", "n_real", "n_generated"} over every process's features.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.num_features = num_features
        for name in SETS:
            self.add_state(f"{name}_n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{name}_sum", torch.zeros(num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{name}_outer", torch.zeros(num_features, num_features, dtype=torch.float64),
                           dist_reduce_fx="sum")

    def update(self, features: Tensor, real: bool) -> None:
        """Add the rows of ``features`` ([N, D], or [D] for one vector) to the real or the generated set."""
        x = torch.as_tensor(features).detach().to(self.real_sum.device, torch.float64)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"features must be [N, {self.num_features}], got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("features contain NaN or inf: the feature extractor failed on some input")
        name = "real" if real else "generated"
        setattr(self, f"{name}_n", getattr(self, f"{name}_n") + x.shape[0])
        setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + x.sum(0))
        setattr(self, f"{name}_outer", getattr(self, f"{name}_outer") + x.T @ x)

    def moments(self, name: str) -> tuple[Tensor, Tensor]:
        """Mean and unbiased covariance of one set (from the current, possibly synced, states)."""
        n = getattr(self, f"{name}_n")
        if n < 2:
            raise RuntimeError(f"the Fréchet distance needs at least 2 {name} feature vectors, got {int(n)}")
        mean = getattr(self, f"{name}_sum") / n
        cov = (getattr(self, f"{name}_outer") - n * torch.outer(mean, mean)) / (n - 1)
        return mean, cov

    def compute(self) -> dict[str, Tensor]:
        mu_r, cov_r = self.moments("real")
        mu_g, cov_g = self.moments("generated")
        return {"distance": frechet_from_moments(mu_r, cov_r, mu_g, cov_g),
                "n_real": self.real_n.long(), "n_generated": self.generated_n.long()}


def frechet_from_moments(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """||mu1 - mu2||^2 + Tr(cov1) + Tr(cov2) - 2 Tr((cov1 cov2)^(1/2)), in float64.

    Tr((S1 S2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the symmetric PSD matrix
    S1^(1/2) S2 S1^(1/2) (same eigenvalues as S1 S2): a symmetric eigendecomposition, stable where the general one of
    S1 S2 gives tiny imaginary parts; eigenvalues below zero by rounding are clipped to zero.
    """
    mu1, mu2, cov1, cov2 = (t.to(torch.float64) for t in (mu1, mu2, cov1, cov2))
    vals, vecs = torch.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    middle = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt


def real_halves(n: int, seed: int, groups: Sequence[str] | None = None) -> list[bool]:
    """Per item of ``n``: True for the first half of a seeded random split, False for the rest. With ``groups`` (a key
    per item, e.g. its real image file) whole groups are split, so one real file never lands in both halves (COCO has
    5 captions per image: an item split would compare an image with itself and make the floor too low)."""
    keys = list(groups) if groups is not None else [str(i) for i in range(n)]
    if len(keys) != n:
        raise ValueError(f"real_halves: {len(keys)} group keys for {n} items")
    distinct = sorted(set(keys))
    random.Random(seed).shuffle(distinct)
    first = set(distinct[: len(distinct) // 2])
    return [k in first for k in keys]


def frechet_block(name: str, features: str, num_features: int, real: Mapping[int, Any],
                  generated: Mapping[int, Any], baselines: Mapping[str, tuple[str, Mapping[int, Any]]], n: int,
                  n_failed: int, seed: int, embed: Callable[[list[Any]], Tensor] | None = None, batch_size: int = 8,
                  device: torch.device | str = "cpu", groups: Sequence[str] | None = None) -> dict[str, Any]:
    """A set distance for a task's results: the model's generated set, each baseline's set and the floor (two random
    halves of the real set, split by ``seed``), each against the real set, with their n.

    Every process calls it with its own items ({global item index: input}, ``real`` holding every item of this
    process); the sums are reduced across processes, so all of them return the same block. ``embed`` turns a batch of
    inputs (file paths) into features, ``batch_size`` at a time: [B, D] (a vector per item), or a list of [T_i, D]
    (frames per item: every frame is a vector of the item's set, as FAD pools them); without ``embed`` the inputs
    are the features. The counts n are of vectors.
    ``groups`` (a key per item, its real file) keeps items sharing a real file in one half of the floor. A set of fewer
    than 2 vectors (all generations failed, a floor of 3 items) gets the value None.
    """
    model, floor = FrechetDistance(num_features).to(device), FrechetDistance(num_features).to(device)
    others = {b: FrechetDistance(num_features).to(device) for b in baselines}
    half = real_halves(n, seed, groups)

    def batches(inputs: Mapping[int, Any]) -> Iterator[tuple[list[int], list[Tensor]]]:
        """(item indices, the features of each item) a batch at a time."""
        order = list(inputs)
        step = batch_size if embed is not None else max(len(order), 1)
        for start in range(0, len(order), step):
            batch = order[start:start + step]
            rows = [inputs[i] for i in batch]
            feats = embed(rows) if embed is not None else [torch.as_tensor(r) for r in rows]
            if isinstance(feats, Tensor):  # one vector per item
                feats = list(feats.reshape(len(batch), -1))
            yield batch, feats

    def rows(feats: Sequence[Tensor]) -> Tensor:  # one matrix per batch: a single GEMM per update
        return torch.cat([f.reshape(-1, num_features) for f in feats]) if feats else torch.zeros(0, num_features)

    for batch, feats in batches(real):
        model.update(rows(feats), real=True)
        for side in (True, False):
            floor.update(rows([f for i, f in zip(batch, feats, strict=True) if half[i] == side]), real=side)
    for metric in others.values():  # every set is compared with the same real set: accumulated once, copied
        for state in ("real_n", "real_sum", "real_outer"):
            setattr(metric, state, getattr(model, state).clone())
    for metric, inputs in [(model, generated), *((others[b], inputs) for b, (_, inputs) in baselines.items())]:
        for _, feats in batches(inputs):
            metric.update(rows(feats), real=False)

    def value(metric: FrechetDistance) -> dict[str, Any]:
        with metric.sync_context():  # the sums of every process (a no-op in a single process)
            n_real, n_gen = int(metric.real_n), int(metric.generated_n)
            enough = min(n_real, n_gen) >= 2  # else None: a covariance needs two vectors
            distance = frechet_from_moments(*metric.moments("real"), *metric.moments("generated")) if enough else None
        return {"value": None if distance is None else float(distance), "n_real": n_real, "n_generated": n_gen}

    return {
        "name": name, "features": features, "higher_is_better": False,
        "model": {**value(model), "n_failed": n_failed},
        "baselines": {b: {"description": baselines[b][0], **value(m)} for b, m in others.items()},
        "floor": {"description": "two random halves of the real set" + (" (split by real file)" if groups else "")
                                 + ": the distance of two samples of one distribution at about half this n (a set "
                                 "distance grows as n shrinks, so it is a generous floor)", **value(floor)},
        "interval": "none: a set distance has no per-item values to bootstrap; read it against the floor and n",
    }
