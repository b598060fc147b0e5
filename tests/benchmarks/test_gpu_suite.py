"""benchmarks/perf/gpu_suite.py: skips cleanly without CUDA, and every part runs at toy size on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anygpt.model.llama.config import Config
from anygpt.model.llama.model import flops_per_token
from benchmarks.perf import gpu_suite

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_without_cuda_it_says_so_and_exits_0(tmp_path, capsys):
    assert gpu_suite.main(["--out", str(tmp_path / "suite.json")]) == 0
    assert "no CUDA device here" in capsys.readouterr().out
    assert not (tmp_path / "suite.json").exists()


@pytest.mark.parametrize(("name", "tflops"), [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
                                              ("NVIDIA H100 NVL", 835), ("NVIDIA H200", 989),
                                              ("NVIDIA A100-SXM4-80GB", 312), ("Some Future GPU", None)])
def test_peak_flops_per_gpu_model(monkeypatch, name, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    peak, source = gpu_suite.peak_flops(torch.device("cuda"), None)
    assert peak == (tflops * 1e12 if tflops else None), source
    assert gpu_suite.peak_flops(torch.device("cuda"), 500.0) == (500e12, "--peak-tflops")


def test_mfu_counts_six_n_plus_the_attention_term():
    config = Config.from_name("llama-1b", vocab_size=gpu_suite.PAPER_VOCAB)
    non_embedding = config.num_parameters() - config.vocab_size * config.n_embd
    assert flops_per_token(config, 4096) == 6 * non_embedding + 12 * 22 * 2048 * 4096


@pytest.mark.slow
def test_quick_cpu_run_exercises_every_part(tmp_path):
    """The suite's own code paths (Lightning + FSDP2 training, generation vs HF, both paper-size tokenizers against
    their references) at toy sizes; the compile variants are left to the GPU (compiling takes minutes here)."""
    out = tmp_path / "suite.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.gpu_suite", "--device", "cpu", "--quick",
                           "--no-compile", "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["size"] == "quick" and report["peak_bf16_flops"] is None
    (train,) = report["sections"]["train"]
    assert train["tokens_per_s"] > 0 and train["mfu"] is None and train["strategy"] == "FSDP2 (1 rank)"
    assert train["first_loss"] == pytest.approx(float(torch.log(torch.tensor(512.0))), abs=0.5)  # random tokens
    finetune = report["sections"]["finetune"]
    assert 0 < finetune["trainable_fraction"] < 0.5 and finetune["estimated_gb"] > 0
    assert [g["batch"] for g in report["sections"]["generate"]] == [1, 2]
    for g in report["sections"]["generate"]:
        assert g["ours"]["ids_equal_to_hf"] == 1.0 and g["hf generate"]["tokens_per_s"] > 0  # float32: same ids
    for key in ("speechtokenizer", "encodec_32khz"):
        assert report["sections"]["tokenizers"][key]["vs_reference"] > 0
    for part in ("[train]", "[finetune]", "[generate]", "[tokenizers]"):
        assert part in proc.stdout
