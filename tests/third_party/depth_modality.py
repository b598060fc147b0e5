"""A modality that lives outside the anygpt package: 16x16 depth maps (``.npy``), quantised per 4x4 patch.

Nothing inside anygpt/ knows it. Importing this module registers the modality "depth" (its markers, token format and
media kind); configs and checkpoints name the codec by class_path. From then on datasets may write ``[depth: x.npy]``,
chat offers ``/depth``, and replies are written as ``.npy`` files and shown in transcripts.
"""

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import register_modality
from anygpt.modalities.spec import SpanStructure


class DepthCodec(Codec):
    """Depth maps ``[16, 16]`` in metres -> 16 codes (the mean depth of each 4x4 patch, in ``levels`` steps)."""

    modality = "depth"

    def __init__(self, levels: int = 16, max_depth: float = 10.0) -> None:
        super().__init__()
        self.levels, self.max_depth = levels, max_depth

    @property
    def codebook_size(self) -> int:
        return self.levels

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=16)  # a 4x4 grid of patch means

    @torch.inference_mode()
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        codes = []
        for depth in items:
            patches = F.avg_pool2d(depth.float()[None, None], 4)[0, 0]  # 4x4
            q = (patches / self.max_depth * (self.levels - 1)).round().clamp(0, self.levels - 1)
            codes.append(q.long().reshape(-1))
        return codes

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], **context: Any) -> list[torch.Tensor]:
        out = []
        for c in codes:
            grid = c.float().view(4, 4) / (self.levels - 1) * self.max_depth
            out.append(grid.repeat_interleave(4, 0).repeat_interleave(4, 1))
        return out


DEPTH = register_modality("depth", markers=("<sodp>", "<eodp>"), token_format="<depth{}>", media="array",
                          codec=DepthCodec)
