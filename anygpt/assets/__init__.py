"""Files shipped inside the anygpt package (the tiny demo tokenizers, the benchmark judges, the demo model), found
through ``importlib.resources``, and the ``anygpt-assets:`` scheme that names them wherever anygpt is installed
(exported checkpoints record their tokenizers that way; ``--ckpt anygpt-assets:models/demo`` opens the demo model)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SCHEME = "anygpt-assets:"
TRAINED_DEMO = "runs/demo/export"  # where the main command (experiments/demo/pretrain.yaml) exports its model
SHIPPED_DEMO = SCHEME + "models/demo"  # the demo model trained longer (experiments/demo/long.yaml), shipped


def assets_dir() -> Path:
    """The folder holding the shipped files (``tokenizers/``, ``judges/``)."""
    return Path(str(files(__name__)))


def asset_path(path: str | Path) -> Path:
    """``anygpt-assets:tokenizers/image`` -> that folder in this installation; any other path is returned as is."""
    text = str(path)
    if text.startswith(SCHEME):
        return assets_dir() / text[len(SCHEME):]
    return Path(path)


def portable_path(path: str | Path) -> str:
    """A path inside the shipped assets written as ``anygpt-assets:...`` (opens on any machine); others unchanged."""
    text = str(path)
    if text.startswith(SCHEME):
        return text
    try:
        inside = Path(path).resolve().relative_to(assets_dir().resolve())
    except ValueError:
        return text
    return SCHEME + inside.as_posix()


def default_checkpoint() -> str:
    """The model chat, generate and serve open when no ``--ckpt`` is given: the main command's export when it has run
    in this folder (a model trained here), else the demo model shipped with anygpt, so a fresh clone can talk before
    it trains. Where neither exists, the main command's folder (the error then says how to make it)."""
    shipped = asset_path(SHIPPED_DEMO)
    if Path(TRAINED_DEMO, "config.json").exists() or not (shipped / "config.json").exists():
        return TRAINED_DEMO
    return SHIPPED_DEMO
