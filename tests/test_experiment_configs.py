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


@pytest.mark.parametrize(("config", "model"), [
    ("experiments/instruct.yaml", "anygpt.model.lm.AnyGPTLM"),
    ("experiments/demo/instruct.yaml", "anygpt.model.lm.AnyGPTLM"),
    ("experiments/demo/pretrain.yaml", "anygpt.model.lm.AnyGPTLM"),
    ("experiments/tokenizers/soundstorm.yaml", "anygpt.modalities.speech.SoundStormModule")])
def test_fit_configs_print(config, model, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert f"class_path: {model}" in capsys.readouterr().out
