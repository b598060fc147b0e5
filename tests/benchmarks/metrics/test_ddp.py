import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.metrics.ddp_script import SPLIT, build_metrics, make_data, run

SCRIPT = Path(__file__).with_name("ddp_script.py")


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_uneven_split(tmp_path):
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())["ranks"]
    single = run(build_metrics(), make_data(), 0, sum(SPLIT))
    for result in ranks:  # every rank computes the corpus-level value over the gathered data
        assert result.keys() == single.keys()
        for name in single:
            assert result[name] == pytest.approx(single[name], abs=1e-9 if name != "clip" else 1e-6), name
    # the per-rank halves alone would give different numbers: the sync is what makes them equal
    half = run(build_metrics(), make_data(), 0, SPLIT[0])
    assert half["cider"] != pytest.approx(single["cider"], abs=1e-6)
