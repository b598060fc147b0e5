import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_import_is_light_and_offline():
    """Importing the metrics pulls in neither the judge model packages nor anygpt (they load lazily, offline)."""
    code = (
        "import sys, benchmarks.metrics as m; "
        "assert {'CIDEr', 'CLIPScore', 'WordErrorRate', 'SpeakerSimilarity', 'CLAPScore'} <= set(m.__all__); "
        "heavy = [k for k in ('laion_clap', 'open_clip', 'resemblyzer', 'anygpt', 'jiwer') if k in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
