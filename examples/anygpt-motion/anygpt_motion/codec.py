"""A codec without weights for 2-D trajectories: ``[T, 2]`` points -> ``steps`` codes, one per step of the path
resampled to ``steps + 1`` points, each code a (direction sector, speed level) pair.

Being weightless, it is named by its class alone everywhere (``{class_path: anygpt_motion.MotionCodec}``): prepare's
``--tokenizers``, fit's ``modalities``, the export's ``anygpt.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from anygpt.modalities.codec import Codec
from anygpt.modalities.registry import register_modality
from anygpt.modalities.spec import SpanStructure


class MotionCodec(Codec):
    """Trajectories ``[T, 2]`` (T >= 2) <-> ``steps`` codes in ``[0, directions * speeds)``.

    Args:
        steps: codes per trajectory (the path is resampled to ``steps + 1`` points).
        directions: angle sectors of a step.
        speeds: length levels of a step, up to ``max_step``.
        max_step: the longest step told apart (longer ones get the top level).
    """

    modality = "motion"

    def __init__(self, steps: int = 16, directions: int = 8, speeds: int = 2, max_step: float = 0.25) -> None:
        super().__init__()
        self.steps, self.directions, self.speeds, self.max_step = steps, directions, speeds, max_step

    @property
    def codebook_size(self) -> int:
        return self.directions * self.speeds

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=self.steps)

    def _resample(self, path: torch.Tensor) -> torch.Tensor:
        path = path.float().reshape(-1, 2)
        if len(path) < 2:
            raise ValueError(f"a trajectory needs at least 2 points, got {len(path)}")
        where = torch.linspace(0, len(path) - 1, self.steps + 1)
        low = where.floor().long().clamp(max=len(path) - 2)
        frac = (where - low).unsqueeze(1)
        return path[low] * (1 - frac) + path[low + 1] * frac

    @torch.inference_mode()
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        codes = []
        for path in items:
            step = self._resample(path).diff(dim=0)
            angle = torch.atan2(step[:, 1], step[:, 0]) % (2 * math.pi)
            sector = (angle / (2 * math.pi / self.directions)).round().long() % self.directions
            speed = (step.norm(dim=1) / self.max_step * self.speeds).long().clamp(0, self.speeds - 1)
            codes.append(sector * self.speeds + speed)
        return codes

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], **context: Any) -> list[torch.Tensor]:
        paths = []
        for c in codes:
            c = c.long().reshape(-1)
            angle = (c // self.speeds).float() * (2 * math.pi / self.directions)
            length = ((c % self.speeds).float() + 0.5) / self.speeds * self.max_step
            steps = torch.stack([angle.cos(), angle.sin()], dim=1) * length.unsqueeze(1)
            paths.append(torch.cat([torch.zeros(1, 2), steps.cumsum(0)]))
        return paths


MOTION = register_modality("motion", markers=("<somo>", "<eomo>"), token_format="<motion{}>", media="array",
                           codec=MotionCodec)
