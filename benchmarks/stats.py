"""Bootstrap confidence intervals for benchmark scores, and the paired test behind "beats the baseline".

A score is a *statistic* of the evaluated items. The bootstrap redraws the n items with replacement many times and
recomputes the statistic on each redraw; the 2.5th and 97.5th percentiles of those values are the 95% interval.
Corpus-level metrics are recomputed on each redraw as a whole (corpus WER = the redraw's summed errors / its summed
reference words; CIDEr-D with document frequencies of the redraw's references), never averaged from per-item scores.

A statistic here is a function of *weights*: ``statistic(weights) -> values`` where ``weights`` is a ``[B, n]`` array
saying how often each item was drawn in each of B redraws (all ones = the evaluated set itself). Weighted sums make
the common cases one matrix product (`mean_of`, `ratio_of`), and a metric with its own corpus statistics implements
the same signature (e.g. `benchmarks.metrics.cider.CiderD`).

A model is compared with a baseline on the *same* redraws (paired bootstrap: the items that make one redraw hard for
the model make it hard for the baseline too); it "beats" the baseline only when the interval of model - baseline lies
entirely on the better side of zero::

    from benchmarks.stats import bootstrap, compare, mean_of
    model, baseline = mean_of(model_scores), mean_of(baseline_scores)
    bootstrap(model, n)                                  # Estimate(value, low, high)
    compare(model, baseline, n, higher_is_better=True)   # Comparison(difference=Estimate(...), beats=True/False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
"""weights ``[B, n]`` (how often each of the n items is drawn in each of B redraws) -> the statistic ``[B]``."""

RESAMPLES = 1000
CONFIDENCE = 0.95
CHUNK = 64  # redraws evaluated together: bounds the [chunk, n] weight matrix and the metric's work arrays


@dataclass(frozen=True)
class Estimate:
    """A score on the evaluated items and its bootstrap interval (``low``, ``high``)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "interval": [self.low, self.high]}

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


@dataclass(frozen=True)
class Comparison:
    """model - baseline with its paired bootstrap interval; ``beats``: the interval excludes zero on the good side."""

    difference: Estimate
    beats: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.difference.to_dict(), "beats": self.beats}


def mean_of(values: Sequence[float] | np.ndarray) -> Statistic:
    """The mean of per-item scores (CLIP/CLAP score, speaker similarity)."""
    x = np.asarray(values, dtype=np.float64)

    def statistic(weights: np.ndarray) -> np.ndarray:
        return weights @ x / weights.sum(axis=1)

    return statistic


def ratio_of(numerators: Sequence[float] | np.ndarray, denominators: Sequence[float] | np.ndarray) -> Statistic:
    """A corpus ratio: sum of numerators / sum of denominators (corpus WER = errors / reference words)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape:
        raise ValueError(f"ratio_of: {num.shape} numerators but {den.shape} denominators")

    def statistic(weights: np.ndarray) -> np.ndarray:
        total = weights @ den
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, (weights @ num) / np.where(total > 0, total, 1.0), np.nan)

    return statistic


def difference(a: Statistic, b: Statistic) -> Statistic:
    """a - b on the same redraws (the paired difference)."""
    return lambda weights: a(weights) - b(weights)


def redraws(n: int, resamples: int = RESAMPLES, seed: int = 0, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Weight matrices ``[<=chunk, n]`` of ``resamples`` redraws of n items with replacement (seeded, reproducible)."""
    if n < 1:
        raise ValueError("the bootstrap needs at least one item")
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        drawn = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_all(statistics: Mapping[str, Statistic], n: int, resamples: int = RESAMPLES,
                  confidence: float = CONFIDENCE, seed: int = 0,
                  differences: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Estimate]:
    """Each statistic's value on the evaluated items and its percentile interval, all on the same redraws.

    ``differences`` names paired differences of two of the statistics ({name: (a, b)} -> a - b per redraw), computed
    from the values already drawn (each statistic is evaluated once per redraw, however many comparisons use it).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    differences = dict(differences or {})
    for name, (a, b) in differences.items():
        if a not in statistics or b not in statistics:
            raise KeyError(f"difference {name!r} names unknown statistics {a!r}, {b!r}")
    ones = np.ones((1, n))
    full = {name: float(stat(ones)[0]) for name, stat in statistics.items()}
    values = {**full, **{name: full[a] - full[b] for name, (a, b) in differences.items()}}
    drawn: dict[str, list[np.ndarray]] = {name: [] for name in values}
    for weights in redraws(n, resamples, seed):
        chunk = {name: np.asarray(stat(weights), dtype=np.float64) for name, stat in statistics.items()}
        chunk.update({name: chunk[a] - chunk[b] for name, (a, b) in differences.items()})
        for name, v in chunk.items():
            drawn[name].append(v)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for name, parts in drawn.items():
        samples = np.concatenate(parts)
        if np.isnan(samples).all():
            low = high = float("nan")
        else:
            low, high = (float(v) for v in np.nanpercentile(samples, [tail, 100 - tail]))
        out[name] = Estimate(values[name], low, high)
    return out


def bootstrap(statistic: Statistic, n: int, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
              seed: int = 0) -> Estimate:
    """The statistic on the n evaluated items and its bootstrap interval."""
    return bootstrap_all({"x": statistic}, n, resamples, confidence, seed)["x"]


def beats(diff: Estimate, higher_is_better: bool) -> bool:
    """Whether the whole interval of model - baseline lies on the better side of zero."""
    return diff.low > 0 if higher_is_better else diff.high < 0


def compare(model: Statistic, baseline: Statistic, n: int, higher_is_better: bool, resamples: int = RESAMPLES,
            confidence: float = CONFIDENCE, seed: int = 0) -> Comparison:
    """Paired bootstrap of model - baseline over the same n items."""
    diff = bootstrap_all({"model": model, "baseline": baseline}, n, resamples, confidence, seed,
                         differences={"diff": ("model", "baseline")})["diff"]
    return Comparison(diff, beats(diff, higher_is_better))
