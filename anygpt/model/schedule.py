"""The learning-rate schedule every trainer in anygpt uses: linear warmup, then a cosine from 1 down to ``min_ratio``.

``min_ratio=1`` gives warmup then a constant rate (the tokenizer trainers' choice).
"""

from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at ``step``: linear from ``1/warmup_steps`` to 1 over ``warmup_steps``, then cosine down to
    ``min_ratio`` at ``total_steps`` (held there afterwards)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int = 0,
                  min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step `LambdaLR` following `warmup_cosine_factor` (step it every optimizer step: ``interval: step``)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, min_ratio))
