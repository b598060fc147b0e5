import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from benchmarks.metrics import FrechetDistance
from benchmarks.metrics.frechet import frechet_block, real_halves


def textbook(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)) with numpy covariances and scipy's matrix square root."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def features(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))  # correlated features, not isotropic
    return rng.normal(size=(n, d)) @ mix + shift + rng.normal(size=d)


def fill(metric, real: np.ndarray, fake: np.ndarray, sizes=(1, 7, 3, 20)) -> None:
    for data, is_real in ((real, True), (fake, False)):
        start, k = 0, 0
        while start < len(data):  # uneven batches, one of a single vector
            step = sizes[k % len(sizes)]
            metric.update(torch.from_numpy(data[start:start + step]), real=is_real)
            start, k = start + step, k + 1


@pytest.mark.parametrize("seed,d,n_real,n_fake,shift", [(0, 8, 60, 45, 0.5), (1, 16, 200, 130, 0.0),
                                                        (2, 3, 5, 4, 2.0), (3, 32, 40, 35, 0.1)])
def test_equals_textbook_formula_with_scipy_sqrtm(seed, d, n_real, n_fake, shift):
    real, fake = features(seed, n_real, d), features(seed + 100, n_fake, d, shift)
    metric = FrechetDistance(d)
    fill(metric, real, fake)
    out = metric.compute()
    assert out["n_real"] == n_real and out["n_generated"] == n_fake
    assert float(out["distance"]) == pytest.approx(textbook(real, fake), rel=1e-9, abs=1e-9)


class Identity(torch.nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x


def test_equals_torchmetrics_fid_on_the_same_features():
    d = 12
    real, fake = features(7, 300, d), features(8, 250, d, 0.3)
    ours, theirs = FrechetDistance(d), FrechetInceptionDistance(feature=Identity(d))
    fill(ours, real, fake)
    fill(theirs, real, fake)
    ref = float(theirs.compute())
    assert float(ours.compute()["distance"]) == pytest.approx(ref, rel=1e-8)
    assert ref > 0.1  # different sets: a non-trivial value


def test_same_set_is_zero_and_bad_input_is_refused():
    x = features(4, 50, 6)
    metric = FrechetDistance(6)
    metric.update(torch.from_numpy(x), real=True)
    with pytest.raises(RuntimeError, match="at least 2 generated"):
        metric.compute()
    metric.update(torch.from_numpy(x), real=False)
    assert float(metric.compute()["distance"]) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        metric.update(torch.zeros(3, 5), real=True)
    with pytest.raises(ValueError, match="NaN"):
        metric.update(torch.full((2, 6), float("nan")), real=True)


def test_block_reports_model_baselines_floor_and_n():
    n, d = 40, 5
    real, gen, train = features(10, n, d), features(11, n, d, 1.0), features(12, n, d)
    failed = {3, 17}
    block = frechet_block("FD (test features)", "test", d, {i: real[i] for i in range(n)},
                          {i: gen[i] for i in range(n) if i not in failed},
                          {"random-train": ("random training items", {i: train[i] for i in range(n)})},
                          n, n_failed=len(failed), seed=0)
    keep = [i for i in range(n) if i not in failed]
    assert block["model"]["value"] == pytest.approx(textbook(real, gen[keep]), rel=1e-9)
    assert block["model"] == {**block["model"], "n_real": n, "n_generated": n - 2, "n_failed": 2}
    assert block["baselines"]["random-train"]["value"] == pytest.approx(textbook(real, train), rel=1e-9)
    first = np.array(real_halves(n, 0))
    assert first.sum() == n // 2
    assert block["floor"]["value"] == pytest.approx(textbook(real[first], real[~first]), rel=1e-9)
    assert (block["floor"]["n_real"], block["floor"]["n_generated"]) == (20, 20)
    # the same block from a file embedder, in batches of 3
    embed_block = frechet_block("FD", "test", d, {i: i for i in range(n)}, {i: i for i in keep}, {}, n, 2, seed=0,
                                embed=lambda idx: torch.from_numpy(real[idx]),
                                batch_size=3)
    assert embed_block["floor"]["value"] == pytest.approx(block["floor"]["value"], rel=1e-12)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.benchmarks.metrics.frechet_ddp_script import SIZES, block

    out = tmp_path / "ddp.json"
    script = Path(__file__).with_name("frechet_ddp_script.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())["ranks"]
    n = SIZES[0]
    single = block(n, 0, 1)
    for result in ranks:  # every rank holds the distance over all items, equal to one process's
        got = result[str(n)]
        for part in ("model", "floor"):
            assert got[part]["value"] == pytest.approx(single[part]["value"], rel=1e-10)
            assert got[part] == {**single[part], "value": got[part]["value"]}
        assert got["baselines"]["train"]["value"] == pytest.approx(single["baselines"]["train"]["value"], rel=1e-10)
    assert single["model"]["n_generated"] == n - 2 and single["model"]["n_real"] == n
    # without the reduction, rank 0's half alone differs
    assert block(n, 0, 2)["model"]["value"] != pytest.approx(single["model"]["value"], rel=1e-3)
    # one item in all (rank 1 has none): both ranks give no value alike, with the reduced n, instead of hanging
    for r in ranks:
        tiny = r[str(SIZES[1])]
        assert tiny["model"] == {"value": None, "n_real": 1, "n_generated": 1, "n_failed": 0}
        assert tiny["floor"]["value"] is None and tiny["floor"]["n_generated"] == 1


def test_floor_split_by_real_file_keeps_duplicates_in_one_half():
    groups = [f"image{i // 5}.jpg" for i in range(40)]  # 8 images x 5 captions, as COCO
    first = real_halves(40, 1, groups)
    for g in set(groups):
        assert len({first[i] for i in range(40) if groups[i] == g}) == 1
    assert sum(first) == 20  # 4 of the 8 images
    real = np.repeat(features(20, 8, 3), 5, axis=0)
    block = frechet_block("FD", "test", 3, dict(enumerate(real)), dict(enumerate(real)), {}, 40, 0, seed=1,
                          groups=groups)
    mask = np.array(first)
    assert block["floor"]["value"] == pytest.approx(textbook(real[mask], real[~mask]), rel=1e-9)
    assert block["floor"]["value"] > 0.1 and "split by real file" in block["floor"]["description"]
    item_split = frechet_block("FD", "test", 3, dict(enumerate(real)), dict(enumerate(real)), {}, 40, 0, seed=1)
    assert item_split["floor"]["value"] < block["floor"]["value"]  # the same images on both sides: too low a floor
    with pytest.raises(ValueError, match="3 group keys for 40"):
        real_halves(40, 0, groups[:3])
