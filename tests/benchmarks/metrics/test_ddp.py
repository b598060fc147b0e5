import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.metrics.ddp_script import SPLITS, build_metrics, make_data, run

SCRIPT = Path(__file__).with_name("ddp_script.py")


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_uneven_split(tmp_path):
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = json.loads(out.read_text())["ranks"]
    single = run(build_metrics(), make_data(), 0, len(make_data()["captions"]))
    for split in SPLITS:
        for result in (r[str(split)] for r in ranks):  # every rank computes the value over the gathered data
            assert result.keys() == single.keys()
            for name in single:
                assert result[name] == pytest.approx(single[name], abs=1e-9 if name != "clip" else 1e-6), (split, name)
    # rank 0's part alone gives different numbers: the sync is what makes them equal
    half = run(build_metrics(), make_data(), 0, SPLITS[0][0])
    assert half["cider"] != pytest.approx(single["cider"], abs=1e-6)
