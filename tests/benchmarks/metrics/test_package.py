import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_import_is_light_and_offline():
    """Importing the metrics pulls in neither the judge model packages nor anygpt beyond its media readers (they
    load lazily, offline)."""
    code = (
        "import sys, benchmarks.metrics as m; "
        "assert {'CIDEr', 'CLIPScore', 'WordErrorRate', 'SpeakerSimilarity', 'CLAPScore'} <= set(m.__all__); "
        "heavy = [k for k in ('laion_clap', 'open_clip', 'resemblyzer', 'jiwer', 'lightning') if k in sys.modules]; "
        "heavy += [k for k in sys.modules if k.startswith('anygpt.') and k != 'anygpt.media']; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_rows_are_kept_in_a_few_preallocated_blocks(monkeypatch):
    import torch

    from benchmarks.metrics import base

    monkeypatch.setattr(base, "BLOCK_ROWS", 8)

    class Rows(base.ObjectStateMetric):
        def __init__(self):
            super().__init__()
            self.add_object_state("rows")

        def update(self, x):
            self.append_rows("rows", x)

        def compute(self):
            return torch.cat(self.rows)

    metric = Rows()
    batches = [torch.arange(k * 3, k * 3 + 3 * 2, dtype=torch.float32).reshape(3, 2) for k in range(7)]  # 21 rows
    for b in batches:
        metric.update(b)
    assert torch.equal(metric.compute(), torch.cat(batches))
    assert [len(p) for p in metric.rows] == [8, 8, 5]  # two full blocks and the filled part of the third
    metric.reset()
    metric.update(batches[0])
    assert torch.equal(metric.compute(), batches[0]) and len(metric.rows) == 1
