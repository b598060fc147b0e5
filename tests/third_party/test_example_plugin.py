"""The plugin template keeps working (issue #23, item 9): examples/anygpt-motion is pip-installed (offline, into a
folder on the subprocesses' path, as a user's ``pip install`` would put it on theirs) and goes through the real CLI:
``anygpt prepare`` (the codec named by its class alone) -> ``anygpt fit`` (a few steps of a tiny model) -> ``anygpt
chat`` (scripted: /help, a motion clip in, /motion out) -> ``anygpt benchmark motion-caption`` (the plugin task); and
the package's own tests (`anygpt.testing.check_codec`) pass.

The benchmark part needs benchmarks.tasks.registry (the ``anygpt.tasks`` entry-point group) and the package's own
tests need anygpt.testing (the conformance helper), both issue #23 work of other branches: until those are merged the
two tests are skipped with that reason.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anygpt.text_tokenizer import train_bpe_tokenizer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "anygpt-motion"
CODEC = "anygpt_motion.codec.MotionCodec"
SHAPES = {"a line to the right": lambda t: np.stack([t, 0 * t], 1),
          "a line going up": lambda t: np.stack([0 * t, t], 1),
          "a circle": lambda t: np.stack([np.cos(2 * math.pi * t), np.sin(2 * math.pi * t)], 1),
          "a zigzag": lambda t: np.stack([t, 0.2 * (np.floor(t * 8) % 2)], 1)}
pytestmark = pytest.mark.slow


def needs(module: str, what: str) -> pytest.MarkDecorator:
    missing = importlib.util.find_spec(module.rpartition(".")[0]) is None or importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"needs {module} ({what}, issue #23)")


def run(args: list[str], site: Path, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def anygpt(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run(["-m", "anygpt.cli", *args], site, cwd)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example installed with pip (no index, no build isolation: offline), into its own folder."""
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "anygpt_motion" / "codec.py").is_file() and list(target.glob("anygpt_motion-*.dist-info"))
    return target


@pytest.fixture(scope="module")
def trained(site, tmp_path_factory) -> Path:
    """Clips and dialogues -> anygpt prepare -> anygpt fit (with the export at its end)."""
    root = tmp_path_factory.mktemp("motion")
    (root / "clips").mkdir()
    rng = np.random.default_rng(0)
    rows, splits = [], {"train": [], "test": []}
    for k, (caption, shape) in enumerate(SHAPES.items()):
        for i in range(6):
            t = np.linspace(0, 1, int(rng.integers(20, 40)))
            path = f"clips/s{k}-{i}.npy"
            np.save(root / path, (shape(t) + rng.normal(0, 0.005, (len(t), 2))).astype(np.float32))
            rows.append({"id": f"s{k}-{i}", "conversation": [[
                {"role": "user", "message": f"Describe this motion. [motion: {path}]"},
                {"role": "assistant", "message": caption}]]})
            splits["test" if i == 0 else "train"].append({"key": f"s{k}-{i}", "motion": path, "caption": caption})
    (root / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "motion").mkdir()
    for split, clips in splits.items():
        (root / "motion" / f"{split}.jsonl").write_text("".join(json.dumps(c) + "\n" for c in clips))
    train_bpe_tokenizer(list(SHAPES) * 20 + ["Describe this motion."] * 20, 300, root / "text")

    (root / "prepare.yaml").write_text(f"""
sources:
  chat: {{class_path: AnyInstruct, init_args: {{path: chat.jsonl}}}}
  pairs: {{class_path: MotionPairs, init_args: {{path: motion/train.jsonl}}}}
tokenizers: {{motion: {{class_path: {CODEC}}}}}
out: shards
num_workers: 0
accelerator: cpu
progress: false
""")
    out = anygpt(["prepare", "--config", "prepare.yaml"], site, root).stdout
    assert "chat: 24 samples in 1 shards, 0 skipped" in out
    assert "pairs: 20 samples in 1 shards, 0 skipped" in out  # the plugin's source, named by its entry point
    (root / "fit.yaml").write_text(f"""
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  max_steps: 12
  log_every_n_steps: 2
  num_sanity_val_steps: 0
  limit_val_batches: 0
  enable_checkpointing: false
  default_root_dir: runs
  logger: false
  callbacks: [{{class_path: anygpt.checkpoints.ExportBundle, init_args: {{dirpath: export}}}}]
model: {{class_path: anygpt.model.lm.AnyGPTLM, init_args: {{model: tiny, learning_rate: 0.005, warmup: 0.1}}}}
data:
  class_path: anygpt.data.datamodule.AnyGPTDataModule
  init_args:
    text_tokenizer: text
    modalities: [{{class_path: {CODEC}}}]
    sources: [{{shards: shards/chat}}]
    max_length: 96
    batch_size: 4
    batches_per_epoch: 12
""")
    anygpt(["fit", "--config", "fit.yaml"], site, root)
    recorded = json.loads((root / "export" / "anygpt.json").read_text())["tokenizers"]
    options = {"steps": 16, "directions": 8, "speeds": 2, "max_step": 0.25}
    assert recorded == {"motion": {"path": None, "class_path": CODEC, "options": options}}  # weightless: by class
    return root


def test_chat_offers_the_plugin_modality(site, trained, tmp_path):
    (tmp_path / "messages.txt").write_text(f"/help\nWhat is this? [motion: {trained / 'clips' / 's2-0.npy'}]\n"
                                           "/motion a circle\n")
    proc = anygpt(["chat", "--ckpt", str(trained / "export"), "--out", "chat", "--input", "messages.txt",
                   "--decoding.max_new_tokens", "24"], site, tmp_path)  # another working directory than the export's
    assert "/motion MESSAGE" in proc.stdout and "[motion: FILE]" in proc.stdout
    assert proc.stdout.count("anygpt> ") == 2 and "error:" not in proc.stderr
    written = sorted((tmp_path / "chat").glob("turn002-*"))
    assert [p.suffix for p in written] == [".npy"] and np.load(written[0]).shape == (17, 2)  # 16 steps decoded
    assert (tmp_path / "chat" / "transcript.html").is_file()


@needs("benchmarks.tasks.registry", "the task registry reading the anygpt.tasks entry points")
def test_the_plugin_task_runs_through_anygpt_benchmark(site, trained, tmp_path):
    listed = anygpt(["benchmark", "--help"], site, tmp_path).stdout
    assert "motion-caption" in listed
    anygpt(["benchmark", "motion-caption", "--ckpt", str(trained / "export"), "--data", str(trained), "--out",
            str(tmp_path / "bench"), "--accelerator", "cpu", "--resamples", "50"], site, tmp_path)
    results = json.loads(next((tmp_path / "bench").rglob("results.json")).read_text())
    assert results["n"] == 4 and "accuracy" in json.dumps(results)
    assert "most-common-caption" in json.dumps(results)
    assert results["command"].startswith("anygpt benchmark motion-caption")


@needs("anygpt.testing", "the codec conformance helper check_codec")
def test_the_plugins_own_tests_pass(site, tmp_path):
    run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")], site, tmp_path)
