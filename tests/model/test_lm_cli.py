"""`anygpt fit` on the experiment configs, through anygpt.cli.main in a subprocess."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anygpt.data.tiny import make_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def anygpt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = "import sys; from anygpt.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_tiny_pretraining_loss_falls(tmp_path):
    made = anygpt("data", "tiny", "--out", "data/tiny", cwd=tmp_path)  # as the config's header says
    assert made.returncode == 0 and (tmp_path / "data/tiny/tokenizer/tokenizer.json").exists(), made.stderr[-3000:]
    proc = anygpt("fit", "--config", str(ROOT / "experiments/tiny/pretrain.yaml"),
                  "--trainer.callbacks+=anygpt.checkpoints.ExportBundle",
                  "--trainer.callbacks.dirpath=runs/tiny/export",
                  "--trainer.callbacks.template=chat", "--trainer.callbacks.task=none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(next((tmp_path / "runs/tiny").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 6
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.5, losses
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(val) == 2 and val[-1] < val[0]
    for group in ("text", "image", "speech", "music"):
        assert any(r.get(f"train/loss_{group}") for r in rows)
    assert (tmp_path / "runs/tiny/checkpoints/last.ckpt").exists()

    # The Lightning checkpoint loads for inference and exports as an AnyGPT folder with the same weights.
    import torch

    from anygpt.checkpoints import load_bundle, save_bundle
    from tests.generation.stub_tokenizers import stub_image, stub_music, stub_speech

    stubs = {"image": stub_image(64), "speech": stub_speech(32), "music": stub_music(64)}
    monkeypatched_cwd = os.getcwd()
    os.chdir(tmp_path)  # the config's tokenizer path is relative to the run's working directory
    try:
        bundle = load_bundle(tmp_path / "runs/tiny/checkpoints/last.ckpt", tokenizers=stubs)
        save_bundle(bundle, tmp_path / "export")
        again = load_bundle(tmp_path / "export", tokenizers=stubs)
    finally:
        os.chdir(monkeypatched_cwd)
    ids = torch.tensor([bundle.vocab.encode("[Human]: hello<eoh> [MMGPT]:")])
    with torch.no_grad():
        assert torch.equal(bundle.model(ids), again.model(ids))
    assert len(again.vocab) == len(bundle.vocab) == bundle.model.config.vocab_size
    # The chat defaults of the run's ExportBundle are in its export and in every .ckpt (so convert records them too).
    import json

    from anygpt.checkpoints import ckpt_to_anygpt

    exported = json.loads((tmp_path / "runs/tiny/export/anygpt.json").read_text())
    assert (exported["template"], exported["task"]) == ("chat", "none")
    # ... and how it was trained, which every benchmark result then records (train_seed, precision, hardware).
    import yaml

    config = yaml.safe_load((ROOT / "experiments/tiny/pretrain.yaml").read_text())
    training = exported["training"]
    assert training["steps"] == config["trainer"]["max_steps"]
    assert training["train_seed"] == config["seed_everything"]
    assert training["precision"] and training["device"] and training["threads"] == 1 and training["world_size"] == 1
    assert (bundle.template, bundle.task) == ("chat", "none")
    assert bundle.training == training  # a .ckpt records it too: a benchmark of any kept checkpoint says its step
    for name, stub in stubs.items():
        stub.codec.save_pretrained(tmp_path / "stubs" / name)
    os.chdir(tmp_path)
    try:
        ckpt_to_anygpt(str(tmp_path / "runs/tiny/checkpoints/last.ckpt"), str(tmp_path / "converted"),
                       tokenizers={name: str(tmp_path / "stubs" / name) for name in stubs}, task="auto")
    finally:
        os.chdir(monkeypatched_cwd)
    converted = json.loads((tmp_path / "converted/anygpt.json").read_text())
    assert (converted["template"], converted["task"]) == ("chat", "auto")  # the flag overrides the recorded task

    # `anygpt fit --ckpt_path FILE` parses the checkpoint's hyper-parameters back into the model's arguments: what
    # configure_model resolved must not be among them (it once was: "unexpected keyword argument 'resolved_config'").
    resumed = anygpt("fit", "--config", str(ROOT / "experiments/tiny/pretrain.yaml"), "--trainer.max_steps=44",
                     "--trainer.limit_val_batches=0", "--ckpt_path", "runs/tiny/checkpoints/last.ckpt", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states" in resumed.stderr + resumed.stdout


@pytest.mark.slow
def test_paper_config_prints_reparses_and_fails_fast_naming_paths(tmp_path, monkeypatch, capsys):
    # In-process: parsing and instantiation fail before any strategy starts processes.
    from anygpt.cli import main

    monkeypatch.chdir(tmp_path)
    config = ROOT / "experiments/pretrain.yaml"

    def printed(path) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(path), "--print_config"])
        assert exit_info.value.code in (0, None)
        return capsys.readouterr().out

    first = printed(config)
    (tmp_path / "printed.yaml").write_text(first)
    assert printed(tmp_path / "printed.yaml") == first
    for expected in ("max_length: 4500", "learning_rate: 6.0e-05", "warmup: 0.03", "grad_clip: 1.0",
                     "ModelParallelStrategy", "precision: bf16-mixed", "data/shards/mmc4/*.tar"):
        assert expected in first

    with pytest.raises((ValueError, FileNotFoundError), match="checkpoints/Llama-2-7b-hf does not exist"):
        main(["fit", "--config", str(config)])
    make_tokenizer(tmp_path / "checkpoints/Llama-2-7b-hf")  # now the checkpoint path exists, the shards do not
    with pytest.raises((ValueError, FileNotFoundError), match="No shards found for 'data/shards/mmc4/\\*.tar'"):
        main(["fit", "--config", str(config)])


@pytest.mark.slow
def test_lora_fit_from_an_export_writes_adapter_and_merged_export_that_agree(tmp_path, monkeypatch):
    """`anygpt fit` with `model.lora` on top of a tiny export: the vocabulary reaches the model through the CLI link,
    the run prints its trainable fraction, and its merged export, the base plus its
    adapter and its Lightning checkpoint give the same logits."""
    import torch

    from anygpt.checkpoints import load_bundle
    from tests.generation.stub_tokenizers import stub_image, stub_music, stub_speech

    assert anygpt("data", "tiny", "--out", "data/tiny", cwd=tmp_path).returncode == 0
    config = str(ROOT / "experiments/tiny/pretrain.yaml")
    base = anygpt("fit", "--config", config, "--trainer.max_steps=20", "--trainer.logger=false",
                  "--trainer.callbacks+=anygpt.checkpoints.ExportBundle", "--trainer.callbacks.dirpath=base",
                  cwd=tmp_path)
    assert base.returncode == 0, base.stderr[-3000:]
    lora = anygpt("fit", "--config", config, "--model.pretrained=base", "--model.learning_rate=0.01",
                  "--model.lora.rank=4", "--model.lora.alpha=8", "--trainer.default_root_dir=runs/lora",
                  "--trainer.callbacks.dirpath=runs/lora/checkpoints", "--trainer.max_steps=20",
                  "--trainer.callbacks+=anygpt.checkpoints.ExportBundle", "--trainer.callbacks.dirpath=lora",
                  "--trainer.logger=false", cwd=tmp_path)
    assert lora.returncode == 0, lora.stderr[-3000:]
    assert "[finetune] trainable parameters: 31,008 of 182,112" in lora.stdout
    stubs = {"image": stub_image(64), "speech": stub_speech(32), "music": stub_music(64)}
    monkeypatch.chdir(tmp_path)  # the checkpoint's text tokenizer path is relative to the run's working directory
    merged = load_bundle(tmp_path / "lora", tokenizers=stubs)
    with_adapter = load_bundle(tmp_path / "base", tokenizers=stubs, adapter=tmp_path / "adapter")
    from_ckpt = load_bundle(tmp_path / "runs/lora/checkpoints/last.ckpt", tokenizers=stubs)
    plain = load_bundle(tmp_path / "base", tokenizers=stubs)
    ids = torch.tensor([merged.vocab.encode("[Human]: hello <soim><eoim> [MMGPT]:")])
    with torch.no_grad():
        expected = merged.model(ids)
        torch.testing.assert_close(with_adapter.model(ids), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(from_ckpt.model(ids), expected, atol=1e-5, rtol=0)
        assert not torch.allclose(plain.model(ids), expected, atol=1e-3)
