"""Set distances in the summary, report table and README table: n, baselines and the floor, no interval."""

import json
from pathlib import Path

import numpy as np

from benchmarks import table
from benchmarks.metrics.frechet import frechet_block
from benchmarks.tasks.distances import distance_lines, distance_table

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "demo" / "results"


def block(n: int = 12, failed: int = 2) -> dict:
    rng = np.random.default_rng(0)
    real, gen, train = (rng.normal(size=(n, 4)) + s for s in (0.0, 1.0, 0.2))
    return frechet_block("FD (tiny CLIP judge features)", "the judge's image embeddings", 4,
                         dict(enumerate(real)), {i: gen[i] for i in range(failed, n)},
                         {"random-train-image": ("a random training image", dict(enumerate(train)))}, n, failed, 0)


def test_lines_and_report_table_state_n_baselines_and_floor():
    b = block()
    (label, text), = distance_lines({"fd_judge": b})
    assert label == "set distance FD (tiny CLIP judge features)"
    assert f"model {b['model']['value']:.3f} (n 10 vs 12 real), 2 failed left out" in text
    assert f"random-train-image {b['baselines']['random-train-image']['value']:.3f} (n 12 vs 12 real)" in text
    assert f"floor: real half vs real half {b['floor']['value']:.3f} (n 6 vs 6 real)" in text
    header, rows = distance_table({"fd_judge": b})
    assert [r[1] for r in rows] == ["model", "baseline: random-train-image", "floor"] and len(header) == 4


def test_readme_table_gets_a_row_per_set_distance_and_old_results_are_unchanged():
    results = table.load_results(RESULTS)
    before = table.render(results)
    assert "Set distances" not in before and "floor" not in before  # committed results predate set distances
    t2i = next(r for r in results if r["task"] == "coco-t2i")
    with_fd = [dict(r, set_distances={"fd_judge": block()}) if r is t2i else r for r in results]
    text = table.render(json.loads(json.dumps(with_fd)))
    b = block()
    row = (f"| `coco-t2i` | FD (tiny CLIP judge features) (lower is better) | {t2i['n']} ({t2i['n_failed']}) | "
           f"{b['model']['value']:.3f} (n 10 vs 12 real) | random-train-image: "
           f"{b['baselines']['random-train-image']['value']:.3f} (n 12 vs 12 real) | floor, real half vs real half: "
           f"{b['floor']['value']:.3f} (n 6 vs 6 real) |")
    assert row in text and "no per-item values to bootstrap" in text
    assert all(line in text.splitlines() for line in before.splitlines() if line.startswith("| `"))
