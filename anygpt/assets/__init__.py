"""Files shipped inside the anygpt package (the tiny demo tokenizers, the benchmark judges), found through
``importlib.resources``, and the ``anygpt-assets:`` scheme that names them wherever anygpt is installed (exported
checkpoints record their tokenizers that way)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SCHEME = "anygpt-assets:"


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
