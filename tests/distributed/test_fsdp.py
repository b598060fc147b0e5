"""2 CPU processes (gloo) with FSDP2 through ModelParallelStrategy, each run a standalone script in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anygpt.data.tiny import write_tiny_corpus

SCRIPT = Path(__file__).with_name("fsdp_run.py")
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def parity_runs(tmp_path_factory):
    """One single-process run, then one 2-process launch for parity and vocabulary expansion."""
    from anygpt.model.llama.config import Config
    from anygpt.model.llama.hf_adapter import save_hf
    from anygpt.model.llama.model import LLaMA

    out = tmp_path_factory.mktemp("parity")
    torch.manual_seed(0)
    save_hf(LLaMA(Config.from_name("tiny", vocab_size=300)), out / "hf")
    run("parity", str(out), "1")
    run("parity", str(out), "2", str(out / "hf"))
    return out


@pytest.mark.slow
def test_sharded_losses_equal_single_process(parity_runs):
    single = json.loads((parity_runs / "parity_1.json").read_text())
    sharded = json.loads((parity_runs / "parity_2.json").read_text())
    assert len(single) == len(sharded) == 6
    assert single != pytest.approx([single[0]] * 6, abs=1e-3)  # training moved the loss
    assert sharded == pytest.approx(single, abs=1e-4)


@pytest.mark.slow
def test_distributed_checkpoint_resume_continues_identically(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus")
    run("resume", str(tmp_path), str(corpus))
    result = json.loads((tmp_path / "resume.json").read_text())
    assert result["checkpoint_is_dir"]  # a distributed (sharded) checkpoint
    assert result["first"] == result["straight"][:5]
    # Same batches (data position restored mid-epoch) and the same losses (weights, optimizer, schedule restored).
    assert result["resumed_batches"] == result["straight_batches"][4:]
    assert result["resumed"] == pytest.approx(result["straight"][4:], abs=1e-5)


@pytest.mark.slow
def test_vocabulary_expansion_of_a_pretrained_checkpoint_under_fsdp2(parity_runs):
    result = json.loads((parity_runs / "expand.json").read_text())
    for name in ("embed", "head"):
        assert result[name] == {"sharded": True, "rows": 320, "old_rows_identical": True, "new_rows_mean": True}
    # rank 0 alone loaded the checkpoint; rank 1 built an empty skeleton and received its shards
    assert [json.loads((parity_runs / f"builds-{r}.json").read_text()) for r in (0, 1)] == [[320], []]


@pytest.mark.slow
def test_lora_under_fsdp2_trains_adapters_and_added_rows_like_one_process(tmp_path):
    run("lora", str(tmp_path), "1")
    run("lora", str(tmp_path), "2")
    single, sharded = (json.loads((tmp_path / f"lora_{n}.json").read_text()) for n in (1, 2))
    assert sharded["sharded"] and not single["sharded"]
    assert single["losses"][-1] < single["losses"][0]
    assert sharded["losses"] == pytest.approx(single["losses"], abs=1e-4)
    for result in (single, sharded):
        assert result["changed"] and all("lora_" in k or "trainable_tokens_delta" in k for k in result["changed"])
        assert any(k.startswith("embed_tokens") for k in result["changed"])
        assert any(k.startswith("lm_head") for k in result["changed"])
    assert sharded["trainable"] == single["trainable"] and 0 < single["fraction"] < 0.5
