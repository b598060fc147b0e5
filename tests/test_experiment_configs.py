"""Every shipped YAML config parses, and `--print_config` prints one that parses again."""

from pathlib import Path

import pytest

from anygpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
PREPARE = sorted((ROOT / "experiments/prepare").glob("*.yaml"))


@pytest.mark.parametrize("config", PREPARE, ids=lambda p: p.stem)
def test_prepare_configs_print_and_reparse(config, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    (tmp_path / "printed.yaml").write_text(printed)
    with pytest.raises(SystemExit):
        main(["prepare", "--config", str(tmp_path / "printed.yaml"), "--print_config"])
    assert capsys.readouterr().out == printed


@pytest.mark.parametrize("config", ["experiments/instruct.yaml", "experiments/demo/instruct.yaml",
                                    "experiments/demo/pretrain.yaml", "experiments/demo/lora.yaml",
                                    "experiments/finetune/lora.yaml", "experiments/finetune/qlora.yaml",
                                    "experiments/finetune/full.yaml"])
def test_fit_configs_print(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: anygpt.model.lm.AnyGPTLM" in capsys.readouterr().out


@pytest.mark.parametrize(("overlay", "expected"), [
    ("experiments/demo/long.yaml", ["max_steps: 8000", "dirpath: runs/demo-long/export", "filename: step={step}"]),
    ("experiments/demo/ablations/asr_only.yaml", ["speech: 1.0", "dialogue: 0.0", "default_root_dir: runs/ablations"]),
    ("experiments/demo/ablations/tts_only.yaml", ["speech: 0.0", "image: 0.0", "default_root_dir: runs/ablations"]),
    ("experiments/demo/ablations/speech_share.yaml", ["speech: 0.52", "music: 0.07", "root_dir: runs/ablations"]),
])
def test_demo_overlays_print_over_the_main_recipe(overlay, expected, capsys):
    """The overlays are read after experiments/demo/pretrain.yaml, as their headers say."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "experiments/demo/pretrain.yaml"), "--config", str(ROOT / overlay),
              "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert all(text in printed for text in expected), printed


@pytest.mark.parametrize("config", sorted((ROOT / "experiments/tokenizers").glob("*.yaml")), ids=lambda p: p.stem)
def test_tokenizer_configs_train_a_codec_through_its_trainer(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "Trainer\n" in printed.split("model:")[1].split("init_args")[0]  # e.g. ImageTokenizerTrainer
    assert "class_path: anygpt.modalities." in printed.split("model:")[1]
