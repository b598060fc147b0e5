"""Pieces the judge trainers share: the contrastive loss and retrieval accuracy (the LR schedule is
`anygpt.model.schedule.warmup_cosine`)."""

from __future__ import annotations

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

