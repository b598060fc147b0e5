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
from torch.utils.data import DataLoader

from anygpt.modalities.pretrained import Pretrained, saved_class
from anygpt.model.schedule import warmup_cosine


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

    def with_schedule(self, optimizer: torch.optim.Optimizer, warmup_steps: int, min_lr_ratio: float,
                      decay_steps: int = 0) -> dict[str, Any]:
        """``optimizer`` with `warmup_cosine` stepped per batch: a linear warmup, then a cosine down to
        ``min_lr_ratio`` at step ``decay_steps`` (0: the trainer's ``max_steps``; ``min_lr_ratio=1``: constant after
        the warmup). A run may stop before ``decay_steps``: a checkpoint taken part-way along a longer schedule is
        reproduced by the same ``decay_steps`` and a smaller ``max_steps``."""
        total = decay_steps or (self.trainer.max_steps if min_lr_ratio != 1.0 else 0)  # constant: no length needed
        if min_lr_ratio != 1.0 and total <= 0:
            raise ValueError(f"min_lr_ratio={min_lr_ratio} decays the rate over trainer.max_steps; set max_steps "
                             f"(got {total}) or min_lr_ratio: 1.0")
        sched = warmup_cosine(optimizer, max(1, warmup_steps), max(0, total), min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("hyper_parameters", {})[self.trained] = self.pretrained.pretrained_config()

    def on_train_end(self) -> None:
        export = getattr(self.trainer, "default_root_dir", None)
        if export and self.trainer.is_global_zero:
            self.pretrained.save_pretrained(Path(export) / "pretrained")


class TrainValDataModule(L.LightningDataModule):
    """Loaders of the ``train_set`` and ``val_set`` that ``setup`` builds, with ``hparams.batch_size`` and
    ``num_workers``; the training loader shuffles and drops the last partial batch."""

    collate_fn: Any = None
    persistent_train_workers = False  # keep the training loader's workers (and what they cached) between epochs

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        return DataLoader(self.train_set, batch_size=h.batch_size, shuffle=True, drop_last=True,
                          collate_fn=self.collate_fn, num_workers=h.num_workers,
                          persistent_workers=self.persistent_train_workers and h.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, collate_fn=self.collate_fn,
                          num_workers=self.hparams.num_workers)


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram: the number of equally used codes it is worth."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
