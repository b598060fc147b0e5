"""Inception-v3 pool features (2048-d) for FID, exactly as torchmetrics' `FrechetInceptionDistance` computes them:
torchmetrics' `NoTrainInceptionV3` (torch-fidelity's port of the TensorFlow 2015-12-05 graph) loaded from the
weights file torch-fidelity publishes (``pt_inception-2015-12-05-6726825d.pth``, a plain state_dict), given by path;
nothing is downloaded. Images are read as 8-bit RGB and passed at their own size (the network resizes to 299x299).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anygpt.media import read_image

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_NAME


class InceptionFeatures:
    """The FID feature extractor from a local weights file; ``embed_files(paths)`` -> [B, 2048] float64."""

    num_features = 2048

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu") -> None:
        from torchmetrics.image.fid import NoTrainInceptionV3

        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(f"FID weights {weights} not found: download {WEIGHTS_URL} (the weights file "
                                    "torchmetrics and torch-fidelity use) and pass its path")
        try:  # refuse pickled code before torch-fidelity loads the file with weights_only=False
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{weights} is not a plain PyTorch state_dict ({err}); expected {WEIGHTS_NAME}") from err
        if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
            raise ValueError(f"{weights} is not the Inception-v3 FID state_dict ({WEIGHTS_NAME}): no Mixed_7c keys")
        self.model = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(self.num_features)],
                                        feature_extractor_weights_path=str(weights)).to(device)
        self.device = torch.device(device)
        self.description = f"Inception-v3 pool features (torchmetrics FID, 2048-d) from {weights}"

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Tensor]) -> Tensor:
        """uint8 [3, H, W] images -> [B, 2048] float64; images of one size go through together."""
        out: list[Tensor | None] = [None] * len(images)
        for size in {tuple(im.shape) for im in images}:
            idx = [k for k, im in enumerate(images) if tuple(im.shape) == size]
            feats = self.model(torch.stack([images[k] for k in idx]).to(self.device))
            for k, f in zip(idx, feats.double().cpu(), strict=True):
                out[k] = f
        return torch.stack(out)  # type: ignore[arg-type]

    def embed_files(self, paths: Sequence[str | Path]) -> Tensor:
        return self.embed_images([image_uint8(p) for p in paths])


def image_uint8(path: str | Path) -> Tensor:
    """An image file as uint8 [3, H, W] RGB (what torchmetrics' FID takes with ``normalize=False``)."""
    return torch.from_numpy(np.asarray(read_image(path), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
