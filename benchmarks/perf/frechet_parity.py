"""FrechetDistance against its references on random feature sets it never saw, and its cost at FID's D=2048.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/perf/frechet_parity.py

Parity: 20 random correlated sets (D from 2 to 64, 2 to 400 vectors per side), the largest relative difference to
the textbook formula (numpy covariances, scipy.linalg.sqrtm) and to torchmetrics' FrechetInceptionDistance fed the
same features through an identity feature extractor. Cost: one update of 64 vectors and one compute at D=2048.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from benchmarks.metrics import FrechetDistance


class Identity(torch.nn.Module):
    """The features are the inputs (torchmetrics' FID with a custom extractor)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def textbook(real: np.ndarray, fake: np.ndarray) -> float:
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def parity(sets: int = 20) -> tuple[float, float]:
    worst_scipy = worst_torchmetrics = 0.0
    for seed in range(sets):
        rng = np.random.default_rng(seed)
        d = int(rng.integers(2, 65))
        mix = rng.normal(size=(d, d))
        real = rng.normal(size=(int(rng.integers(d + 2, 400)), d)) @ mix
        fake = rng.normal(size=(int(rng.integers(d + 2, 400)), d)) @ mix + rng.normal(size=d) * rng.uniform(0, 1)
        ours, theirs = FrechetDistance(d), FrechetInceptionDistance(feature=Identity(d))
        for x, is_real in ((real, True), (fake, False)):
            ours.update(torch.from_numpy(x), real=is_real)
            theirs.update(torch.from_numpy(x), real=is_real)
        value, ref = float(ours.compute()["distance"]), textbook(real, fake)
        worst_scipy = max(worst_scipy, abs(value - ref) / abs(ref))
        worst_torchmetrics = max(worst_torchmetrics, abs(value - float(theirs.compute())) / abs(ref))
    return worst_scipy, worst_torchmetrics


def main() -> None:
    worst_scipy, worst_torchmetrics = parity()
    print(f"max relative difference over 20 sets: scipy sqrtm {worst_scipy:.1e}, "
          f"torchmetrics FID {worst_torchmetrics:.1e}")
    metric, batch = FrechetDistance(2048), torch.randn(64, 2048)
    start = time.perf_counter()
    for _ in range(16):
        metric.update(batch, real=True)
    per_vector = (time.perf_counter() - start) / (16 * 64)
    metric.update(torch.randn(3000, 2048), real=False)
    start = time.perf_counter()
    metric.compute()
    print(f"D=2048, {torch.get_num_threads()} thread(s): update {per_vector * 1e3:.2f} ms per vector, "
          f"compute {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
