"""The demo model shipped with anygpt (anygpt/assets/models/demo): what a fresh clone talks to before it trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from anygpt import assets
from anygpt.checkpoints import load_bundle

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = assets.asset_path(assets.SHIPPED_DEMO)


def test_the_shipped_model_is_the_long_recipe_and_opens_anywhere():
    info = json.loads((SHIPPED / "anygpt.json").read_text())
    recipe = yaml.safe_load((ROOT / "experiments/demo/pretrain.yaml").read_text())
    long = yaml.safe_load((ROOT / "experiments/demo/long.yaml").read_text())
    assert info["training"]["steps"] == long["trainer"]["max_steps"]
    assert info["training"]["train_seed"] == recipe["seed_everything"]
    # its tokenizers are the shipped ones, named so that any installation finds them
    assert {name: ref["path"] for name, ref in info["tokenizers"].items()} == {
        name: f"anygpt-assets:tokenizers/{name}" for name in ("image", "speech", "music")}
    bundle = load_bundle(assets.SHIPPED_DEMO)  # vocabulary layout and tokenizer sizes checked on load
    sizes = recipe["model"]["init_args"]["model_config"]
    assert (bundle.model.config.n_layer, bundle.model.config.n_embd) == (sizes["n_layer"], sizes["n_embd"])


@pytest.mark.slow
def test_a_fresh_folder_talks_to_the_shipped_model(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    code = "import sys; from anygpt.cli import main; main(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, "generate", "a red circle on a blue background", "--output",
                           "image", "--out", "generated"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no --ckpt given: anygpt-assets:models/demo (the demo model shipped with anygpt)" in proc.stderr
    assert list((tmp_path / "generated").glob("*.png")), "no image written"
