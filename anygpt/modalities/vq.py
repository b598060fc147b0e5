"""Dead-code restarts that work for the `encodec` package's EMA codebooks.

`encodec`'s ``EuclideanCodebook.replace_`` overwrites ``embed`` but not the EMA statistics, and the EMA update that
follows in the same forward recomputes ``embed = embed_avg / cluster_size``, undoing the restart: unused codes stay
dead and small codebooks collapse. `enable_dead_code_restarts` swaps in a subclass whose restart also resets the EMA
statistics of the replaced entries. Buffers and state-dict keys are unchanged, so checkpoints stay compatible.
"""

from __future__ import annotations

import torch
from encodec.quantization.core_vq import EuclideanCodebook, sample_vectors
from torch import nn


class RestartingCodebook(EuclideanCodebook):
    """`EuclideanCodebook` whose dead entries restart at batch vectors with fresh EMA statistics."""

    def replace_(self, samples: torch.Tensor, mask: torch.Tensor) -> None:
        new = sample_vectors(samples, self.codebook_size)
        size = torch.full_like(self.cluster_size, float(self.threshold_ema_dead_code))
        self.embed.data.copy_(torch.where(mask[..., None], new, self.embed))
        self.embed_avg.data.copy_(torch.where(mask[..., None], new * size[..., None], self.embed_avg))
        self.cluster_size.data.copy_(torch.where(mask, size, self.cluster_size))


def enable_dead_code_restarts(module: nn.Module) -> nn.Module:
    """Make every `EuclideanCodebook` inside ``module`` a `RestartingCodebook` (in place)."""
    for child in module.modules():
        if type(child) is EuclideanCodebook:
            child.__class__ = RestartingCodebook
    return module
