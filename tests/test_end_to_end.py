"""The README's main job, reduced: demo corpus -> shards -> pretraining -> export -> every benchmark -> chat.

The same commands a user runs (`anygpt fit/benchmark/chat` in subprocesses), on a small corpus and a few steps, so CI
guards the whole path. Scores are not judged here (a few steps learn little); that they are produced is.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["coco-caption", "coco-t2i", "librispeech-asr", "vctk-tts", "musiccaps-caption", "musiccaps-gen"]


def anygpt(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    code = "import sys; from anygpt.cli import main; main(sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"anygpt {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    anygpt("fit", "--config", str(ROOT / "experiments/demo/pretrain.yaml"),
           "--data.init_args.root", "data/demo", "--data.init_args.scale", "0.01",
           "--data.init_args.text_vocab_size", "400", "--data.init_args.batches_per_epoch", "8",
           "--data.init_args.batch_size", "4", "--data.init_args.max_length", "384",
           "--trainer.max_steps", "16", "--trainer.val_check_interval", "8", "--trainer.log_every_n_steps", "2",
           cwd=work)
    return work


@pytest.mark.slow
def test_pretraining_runs_logs_and_exports(trained):
    rows = list(csv.DictReader(open(next((trained / "runs/demo").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 4 and all(loss == loss for loss in losses)  # logged and finite
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    for group in ("text", "image", "speech", "music"):
        assert any(r.get(f"train/loss_{group}") for r in rows), group
    export = trained / "runs/demo/export"
    info = json.loads((export / "anygpt.json").read_text())
    assert [m["name"] for m in info["modalities"]] == ["image", "speech", "music"]
    assert (trained / "data/demo/shards/image-train/manifest.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_benchmark_scores_the_trained_model(trained, task):
    out = trained / "bench" / task
    anygpt("benchmark", task, "--ckpt", "runs/demo/export", "--data", "data/demo", "--limit", "2",
           "--batch_size", "2", "--out", str(out), "--accelerator", "cpu", cwd=trained)
    result = json.loads((out / "results.json").read_text())
    assert result["n"] >= 1 and isinstance(result["value"], float)
    assert result["baselines"] and len(result["interval"]) == 2
    html = (out / "report.html").read_text()
    assert ("<img" in html) or ("<audio" in html)


@pytest.mark.slow
def test_chat_session_with_every_modality_in_and_out(trained):
    data = trained / "data/demo"
    image = next((data / "coco").rglob("*.png"))
    speech = next((data / "librispeech").rglob("*.flac"))
    script = trained / "messages.txt"
    script.write_text(f"Please describe this image. [image: {image}]\n"
                      "/image a red circle on a blue background\n"
                      f"/speech What is said here? [speech: {speech}]\n"
                      "/music a calm piano melody\n")
    anygpt("chat", "--ckpt", "runs/demo/export", "--out", "chat", "--input", str(script),
           "--decoding.max_new_tokens", "80", cwd=trained)
    html = (trained / "chat" / "transcript.html").read_text()
    assert html.count('class="turn user"') == 4 and html.count('class="turn assistant"') == 4
    assert "<img" in html and "<audio" in html
