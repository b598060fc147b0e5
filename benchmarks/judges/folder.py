"""The folder format of the tiny judges trained by anygpt (CTC ASR, CLAP): ``config.json`` (the constructor's
arguments plus an ``anygpt_judge`` record of how it was trained) and ``model.safetensors``. Loading calls the class's
own constructor with the recorded numbers only: a judge folder never names code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import torch

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
J = TypeVar("J", bound="JudgeFolder")


class JudgeFolder:
    """Mixin for an ``nn.Module`` whose ``config`` dict holds its constructor's arguments."""

    config: dict[str, Any]
    kind: str = "judge"  # what the error message calls a folder of this class

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(directory / WEIGHTS_NAME))
        (directory / CONFIG_NAME).write_text(json.dumps({**self.config, "anygpt_judge": extra or {}}, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls: type[J], directory: str | Path, device: str | torch.device = "cpu") -> J:
        from safetensors.torch import load_file

        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name} not found: a {cls.kind} folder holds {CONFIG_NAME} and "
                                        f"{WEIGHTS_NAME} (written by {cls.__name__}.save)")
        config = json.loads((directory / CONFIG_NAME).read_text())
        config.pop("anygpt_judge", None)
        model = cls(**config)
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        return model.to(device).eval()
