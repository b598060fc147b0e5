"""What the tokenizer trainers share: a LightningModule that trains one `Pretrained` module (a codec, SoundStorm).

The trained module keeps no training settings; the trainer holds them (learning rate, loss weights) and records the
module's class and arguments in its checkpoints, so ``load_from_checkpoint`` rebuilds both. When training ends the
module is written with ``save_pretrained`` to ``{default_root_dir}/pretrained``, where the shipped assets come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

from anygpt.modalities.pretrained import Pretrained, saved_class


def as_pretrained(value: Pretrained | Mapping[str, Any], base: type[Pretrained] = Pretrained,
                  source: str = "checkpoint hyperparameters") -> Pretrained:
    """A module, or one built from its ``{class_path, init_args}`` (read from a checkpoint: the class is checked)."""
    if isinstance(value, Pretrained):
        return value
    if isinstance(value, Mapping) and "class_path" in value:
        config = {"class_path": value["class_path"], "init_args": dict(value.get("init_args") or {})}
        target, init_args, _ = saved_class(config, base, source)
        return target(**init_args)
    raise TypeError(f"expected a {base.__name__} or its {{class_path, init_args}}, got {value!r}")


class TokenizerTrainer(L.LightningModule):
    """Base of the trainers: the trained module lives in the attribute named by ``trained`` (``codec`` by default)."""

    trained: ClassVar[str] = "codec"

    def __init__(self, module: Pretrained | Mapping[str, Any]) -> None:
        super().__init__()
        setattr(self, self.trained, as_pretrained(module))

    @property
    def pretrained(self) -> Pretrained:
        return getattr(self, self.trained)

    def step(self, batch: Any, stage: str) -> torch.Tensor:
        """The loss of one batch, with its metrics logged under ``stage`` (``train`` or ``val``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement step (or training_step)")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "val")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("hyper_parameters", {})[self.trained] = self.pretrained.pretrained_config()

    def on_train_end(self) -> None:
        export = getattr(self.trainer, "default_root_dir", None)
        if export and self.trainer.is_global_zero:
            self.pretrained.save_pretrained(Path(export) / "pretrained")


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram: the number of equally used codes it is worth."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
