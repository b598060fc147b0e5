"""benchmarks.perf.tokenizer_ceilings.level_cross_entropies: held-out nats per code of each RVQ level."""

import math

import torch

from benchmarks.perf.tokenizer_ceilings import level_cross_entropies


def _utterances(n: int, frames: int, bins: int, seed: int) -> list[torch.Tensor]:
    """Level 1 random; level 2 a function of level 1; level 3 repeats its previous frame's code or is noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        level1 = torch.randint(0, bins, (frames,), generator=g)
        level2 = (level1 * 7 + 3) % bins
        level3 = torch.full((frames,), int(torch.randint(0, bins, (1,), generator=g)))  # constant within an utterance
        level4 = torch.randint(0, bins, (frames,), generator=g)  # noise
        out.append(torch.stack([level1, level2, level3, level4]))
    return out


def test_each_context_predicts_what_it_carries_and_noise_stays_at_chance():
    bins = 16
    rows = level_cross_entropies(_utterances(200, 50, bins, 0), _utterances(50, 50, bins, 1), bins)
    by_level = {row["level"]: row for row in rows}
    chance = math.log(bins)
    assert all(abs(row["uniform"] - chance) < 1e-9 for row in rows)
    assert "given_level1" not in by_level[1] and by_level[1]["marginal"] > chance - 0.05
    assert by_level[2]["given_level1"] < 0.3 < chance - 0.05 < by_level[2]["given_previous_frame"]
    assert by_level[3]["given_previous_frame"] < 0.5 and by_level[3]["given_level1"] > chance - 0.1
    for key in ("marginal", "given_level1", "given_previous_frame"):  # held-out noise: no context helps, none hurts
        assert abs(by_level[4][key] - chance) < 0.1, (key, by_level[4])
