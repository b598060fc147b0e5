"""Pieces the judge trainers share: the contrastive loss, retrieval accuracy, the LR schedule."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE over the batch (CLIP's loss); embeddings already L2-normalised."""
    logits = logit_scale * image_emb @ text_emb.T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def retrieval_at_1(query: Tensor, keys: Tensor) -> float:
    """Fraction of queries whose most similar key is the one at the same index."""
    return (query @ keys.T).argmax(1).eq(torch.arange(len(query), device=query.device)).float().mean().item()


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then cosine decay to 0 (per step)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
