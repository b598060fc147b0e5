"""A modality that lives outside the anygpt package: 16x16 depth maps, quantised per 4x4 patch.

It only subclasses `anygpt.modalities.base.Modality`; configs name it by class_path. Nothing inside anygpt/ knows it.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anygpt.modalities.base import Modality, SpanStructure


class DepthMap(Modality):
    name = "depth"
    markers = ("<sodp>", "<eodp>")
    token_format = "<depth{}>"

    def __init__(self, levels: int = 16, max_depth: float = 10.0) -> None:
        super().__init__()
        self.save_hyperparameters()

    @property
    def codebook_size(self) -> int:
        return self.hparams.levels

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=16)  # a 4x4 grid of patch means

    def load(self, source) -> torch.Tensor:
        return torch.from_numpy(np.load(Path(source)).astype(np.float32))

    def save(self, data: torch.Tensor, path) -> None:
        np.save(Path(path), data.numpy())

    @torch.inference_mode()
    def encode(self, items):
        codes = []
        for depth in items:
            patches = F.avg_pool2d(depth[None, None], 4)[0, 0]  # 4x4
            q = (patches / self.hparams.max_depth * (self.codebook_size - 1)).round().clamp(0, self.codebook_size - 1)
            codes.append(q.long().reshape(-1))
        return codes

    @torch.inference_mode()
    def decode(self, codes):
        out = []
        for c in codes:
            grid = c.float().view(4, 4) / (self.codebook_size - 1) * self.hparams.max_depth
            out.append(grid.repeat_interleave(4, 0).repeat_interleave(4, 1))
        return out
