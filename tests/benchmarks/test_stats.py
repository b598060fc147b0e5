"""The bootstrap behind every interval and every "beats": coverage, pairing, corpus ratios, reproducibility."""

import numpy as np
import pytest

from benchmarks.stats import Estimate, beats, bootstrap, bootstrap_all, compare, mean_of, ratio_of, redraws


def test_redraws_draw_n_items_with_replacement_reproducibly():
    chunks = list(redraws(7, resamples=150, seed=3, chunk=64))
    assert [c.shape for c in chunks] == [(64, 7), (64, 7), (22, 7)]
    weights = np.concatenate(chunks)
    assert (weights.sum(axis=1) == 7).all() and (weights >= 0).all()
    assert (weights != 1).any()  # real redraws, not the identity
    again = np.concatenate(list(redraws(7, resamples=150, seed=3, chunk=64)))
    assert np.array_equal(weights, again)
    assert not np.array_equal(weights, np.concatenate(list(redraws(7, resamples=150, seed=4))))
    with pytest.raises(ValueError, match="at least one item"):
        next(redraws(0))


def test_value_is_the_statistic_of_the_evaluated_items():
    x = np.array([0.1, 0.5, 0.9, 0.3])
    est = bootstrap(mean_of(x), 4)
    assert est.value == pytest.approx(x.mean()) and est.low <= est.value <= est.high
    errors, words = np.array([1, 0, 4, 2]), np.array([5, 3, 8, 4])
    assert bootstrap(ratio_of(errors, words), 4).value == pytest.approx(7 / 20)  # corpus WER, not a mean of ratios
    constant = bootstrap(ratio_of(words, words), 4)
    assert (constant.value, constant.low, constant.high) == (1.0, 1.0, 1.0)
    assert f"{est:.2f}".startswith("0.45 [")


def test_95_percent_intervals_cover_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    trials = 200
    for t in range(trials):
        sample = rng.normal(1.0, 2.0, size=60)
        est = bootstrap(mean_of(sample), 60, resamples=400, seed=t)
        covered += est.low <= 1.0 <= est.high
    assert 0.88 <= covered / trials <= 0.99, covered / trials


def test_interval_narrows_with_more_items():
    rng = np.random.default_rng(1)
    small = bootstrap(mean_of(rng.normal(size=30)), 30)
    large = bootstrap(mean_of(rng.normal(size=3000)), 3000)
    assert (large.high - large.low) < (small.high - small.low) / 5


def test_paired_bootstrap_beats_only_when_the_difference_interval_excludes_zero():
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 1.0, size=200)  # shared by model and baseline: most of the spread
    baseline = difficulty + rng.normal(0, 0.05, size=200)
    better = difficulty + 0.1 + rng.normal(0, 0.05, size=200)
    same = difficulty + rng.normal(0, 0.05, size=200)
    n = 200
    # separately, the two intervals overlap widely; paired, the 0.1 gain is clear
    a, b = bootstrap(mean_of(better), n), bootstrap(mean_of(baseline), n)
    assert a.low < b.high
    win = compare(mean_of(better), mean_of(baseline), n, higher_is_better=True)
    assert win.beats and win.difference.low > 0 and win.difference.value == pytest.approx(0.1, abs=0.02)
    tie = compare(mean_of(same), mean_of(baseline), n, higher_is_better=True)
    assert not tie.beats and tie.difference.low < 0 < tie.difference.high
    worse = compare(mean_of(baseline), mean_of(better), n, higher_is_better=True)
    assert not worse.beats
    # lower is better (WER): the model must be below the baseline on the whole interval
    errors_model, errors_base, words = np.full(200, 1.0), np.full(200, 3.0), np.full(200, 10.0)
    errors_model[::7] = 4.0
    wer = compare(ratio_of(errors_model, words), ratio_of(errors_base, words), n, higher_is_better=False)
    assert wer.beats and wer.difference.high < 0
    assert not compare(ratio_of(errors_base, words), ratio_of(errors_model, words), n, higher_is_better=False).beats


def test_beats_direction_and_shared_redraws():
    assert beats(Estimate(0.1, 0.01, 0.2), True) and not beats(Estimate(0.1, -0.01, 0.2), True)
    assert beats(Estimate(-0.1, -0.2, -0.01), False) and not beats(Estimate(-0.1, -0.2, 0.01), False)
    x = np.arange(10.0)
    both = bootstrap_all({"a": mean_of(x), "b": mean_of(x)}, 10)
    assert both["a"] == both["b"]  # the same redraws for every statistic of one call
    assert both["a"].to_dict() == {"value": 4.5, "interval": [both["a"].low, both["a"].high]}


def test_named_differences_equal_the_bootstrap_of_the_difference_statistic():
    from benchmarks.stats import difference

    rng = np.random.default_rng(5)
    a, b = mean_of(rng.normal(size=40)), mean_of(rng.normal(size=40))
    both = bootstrap_all({"a": a, "b": b}, 40, seed=7, differences={"a-b": ("a", "b")})
    direct = bootstrap(difference(a, b), 40, seed=7)
    assert both["a-b"].value == pytest.approx(both["a"].value - both["b"].value)
    assert (both["a-b"].low, both["a-b"].high) == pytest.approx((direct.low, direct.high))
    with pytest.raises(KeyError, match="unknown statistics"):
        bootstrap_all({"a": a}, 40, differences={"x": ("a", "c")})
