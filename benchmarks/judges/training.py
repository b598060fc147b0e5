"""Pieces the judge trainers share: the optimizer with its LR schedule, the training record exported with a judge,
the contrastive loss and retrieval accuracy."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from anygpt.model.schedule import warmup_cosine


class JudgeTrainer(L.LightningModule):
    """AdamW (``hparams.lr``, ``hparams.weight_decay``) with warmup (``hparams.warmup_steps``) and cosine decay per
    step, and `record`: how the exported judge was trained."""

    def __init__(self) -> None:
        super().__init__()
        self._start, self._cpu = time.perf_counter(), time.process_time()

    def configure_optimizers(self, params: Any = None):
        opt = torch.optim.AdamW(self.parameters() if params is None else params, lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        total = max(1, self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warmup_cosine(opt, self.hparams.warmup_steps, total),
                                                   "interval": "step"}}

    def record(self, trained_on: str) -> dict[str, Any]:
        return {"trained_on": trained_on, "train_seconds": round(time.perf_counter() - self._start, 1),
                "train_cpu_seconds": round(time.process_time() - self._cpu, 1), "steps": self.trainer.global_step}


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE over the batch (CLIP's loss); embeddings already L2-normalised."""
    logits = logit_scale * image_emb @ text_emb.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def retrieval_at_1(query: Tensor, keys: Tensor) -> float:
    """Fraction of queries whose most similar key is the one at the same index."""
    return (query @ keys.T).argmax(1).eq(torch.arange(len(query), device=query.device)).float().mean().item()

