"""What chat, generate and serve open without --ckpt, and the anygpt-assets: scheme wherever a checkpoint is named."""

from __future__ import annotations

from pathlib import Path

import anygpt.assets as assets
from anygpt import hub


def _shipped(root: Path) -> Path:
    model = root / "models/demo"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    return model


def test_a_model_trained_here_wins_over_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(assets, "assets_dir", lambda: tmp_path / "site")
    assert assets.default_checkpoint() == "runs/demo/export"  # neither: the main command's folder, whose error says how
    model = _shipped(tmp_path / "site")
    assert assets.default_checkpoint() == "anygpt-assets:models/demo"
    assert hub.local(assets.default_checkpoint(), "checkpoint") == model  # resolved wherever a checkpoint is named
    (tmp_path / "runs/demo/export").mkdir(parents=True)
    assert assets.default_checkpoint() == "anygpt-assets:models/demo"  # an empty folder is no model
    (tmp_path / "runs/demo/export/config.json").write_text("{}")
    assert assets.default_checkpoint() == "runs/demo/export"
