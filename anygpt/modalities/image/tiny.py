"""A tiny VQ autoencoder for the demo corpus: a 64x64 image <-> 32 tokens (a 4x4 grid, two codes per cell).

The codebook is learned by EMA with k-means initialisation and dead-code restarts (the `encodec` package's
`VectorQuantization`); training (L1 + MSE reconstruction plus the commitment loss) is `ImageTokenizerTrainer`
(``anygpt fit --config experiments/tokenizers/demo_image.yaml``, minutes on a CPU). Few tokens keep demo sequences
short for the LLM while colour, shape and position stay recognisable. The trained weights ship in
``anygpt/assets/tokenizers/image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from anygpt.media import IMAGE_PREPROCESSING
from anygpt.modalities.codec import Codec
from anygpt.modalities.spec import SpanStructure
from anygpt.modalities.vq import enable_dead_code_restarts


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyImageTokenizer(Codec):
    """VQ autoencoder with a ``grid x grid`` latent and ``groups`` codes per cell (tokens = grid^2 * groups).

    Args:
        image_size: side of the square images it reads and writes (`Modality.read` resizes files to it).
        grid: latent side; ``image_size / grid`` must be a power of two (one stride-2 stage per halving).
        groups: codes per grid cell (the cell's latent is split into ``groups`` vectors of ``code_dim``).
        codebook_size, code_dim: the shared codebook.
        channels: widths of the stages, from full resolution to the grid (one per halving).
        decay, threshold_ema_dead_code, kmeans_iters: codebook learning (EMA decay, restart threshold, k-means init).
        blocks: residual blocks per stage (none in the encoder's full-resolution stage, ``blocks - 1`` in the
            decoder's, where sharp edges are drawn).
        patch: pixels are folded into channels in ``patch x patch`` blocks at the input and unfolded at the output
            (pixel (un)shuffle), so every convolution runs at ``image_size / patch``: the cost of a stage drops
            ``patch^2``-fold and the widths can grow instead.
        preprocess: how files become pixels (`anygpt.media.IMAGE_PREPROCESSING`); anygpt's own by default.
    """

    modality = "image"
    default_checkpoint = "anygpt-assets:tokenizers/image"

    def __init__(
        self,
        image_size: int = 64,
        grid: int = 4,
        groups: int = 2,
        codebook_size: int = 512,
        code_dim: int = 32,
        channels: Sequence[int] = (16, 32, 64, 96),
        decay: float = 0.99,
        threshold_ema_dead_code: float = 0.2,
        kmeans_iters: int = 10,
        blocks: int = 1,
        patch: int = 1,
        preprocess: str = "anygpt",
    ) -> None:
        super().__init__()
        if preprocess not in IMAGE_PREPROCESSING:
            raise ValueError(f"TinyImageTokenizer: unknown preprocess {preprocess!r}; choose one of "
                             f"{IMAGE_PREPROCESSING}")
        self.image_preprocess = preprocess
        from encodec.quantization.core_vq import VectorQuantization

        stages = (image_size // (grid * patch)).bit_length() - 1
        if grid * patch * 2**stages != image_size or len(channels) != stages:
            raise ValueError(f"image_size/(grid*patch) = {image_size}/({grid}*{patch}) must be a power of two 2^n "
                             f"with len(channels) == n (got {len(channels)} channels)")
        pixels = 3 * patch * patch  # values per patch: the networks run at 1/patch of the image resolution
        enc: list[nn.Module] = [nn.PixelUnshuffle(patch)] if patch > 1 else []  # (keeps patch=1 state dicts)
        enc.append(nn.Conv2d(pixels, channels[0], 4, stride=2, padding=1))
        for i, c in enumerate(channels):
            if i > 0:  # no residual block at the first (most expensive) resolution
                enc += [_ResBlock(c) for _ in range(blocks)]
            if i + 1 < len(channels):
                enc.append(nn.Conv2d(c, channels[i + 1], 4, stride=2, padding=1))
        enc += [nn.GroupNorm(8, channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], groups * code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(groups * code_dim, channels[-1], 3, padding=1)]
        for i in reversed(range(len(channels))):
            dec += [_ResBlock(channels[i]) for _ in range(blocks if i > 0 else blocks - 1)]
            out = channels[i - 1] if i > 0 else channels[0]
            dec.append(nn.ConvTranspose2d(channels[i], out, 4, stride=2, padding=1))
        dec += [nn.GroupNorm(8, channels[0]), nn.SiLU(), nn.Conv2d(channels[0], pixels, 3, padding=1),
                nn.PixelShuffle(patch)]
        self.decoder = nn.Sequential(*dec)
        self.quantizer = VectorQuantization(dim=code_dim, codebook_size=codebook_size, decay=decay, kmeans_init=True,
                                            kmeans_iters=kmeans_iters, threshold_ema_dead_code=threshold_ema_dead_code,
                                            commitment_weight=1.0)
        enable_dead_code_restarts(self.quantizer)
        self.image_size, self.grid, self.groups, self.code_dim = image_size, grid, groups, code_dim
        self._codebook_size = codebook_size

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    @property
    def tokens_per_image(self) -> int:
        return self.grid**2 * self.groups

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=self.tokens_per_image)

    # -- networks --------------------------------------------------------------------------------------------------
    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` in [0, 1] -> ``[B, code_dim, tokens]`` (cells row-major, the groups of a cell adjacent)."""
        z = self.encoder(images * 2 - 1)  # [B, groups * code_dim, g, g]
        b = z.shape[0]
        z = z.reshape(b, self.groups, self.code_dim, self.grid * self.grid).permute(0, 2, 3, 1)  # [B, D, cells, groups]
        return z.reshape(b, self.code_dim, -1)

    def _pixels(self, quantized: torch.Tensor) -> torch.Tensor:
        b = quantized.shape[0]
        z = quantized.reshape(b, self.code_dim, self.grid * self.grid, self.groups).permute(0, 3, 1, 2)
        z = z.reshape(b, self.groups * self.code_dim, self.grid, self.grid)
        return (self.decoder(z) + 1) / 2

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if images.dim() != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(f"Expected images [3, {size}, {size}] in [0, 1] (Modality.read resizes files), got "
                             f"{tuple(images.shape)}")
        return images.to(self.device, torch.float32)

    @torch.inference_mode()
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Images ``[3, S, S]`` in [0, 1] -> codes ``[tokens]`` each."""
        if not items:
            return []
        codes = self.quantizer.encode(self._latents(self._check(torch.stack(list(items)))))  # [B, tokens]
        return list(codes.unbind(0))

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], **context: Any) -> list[torch.Tensor]:
        """Codes ``[tokens]`` -> images ``[3, S, S]`` in [0, 1] (no context used)."""
        if not codes:
            return []
        batch = torch.stack([c.reshape(-1).long().to(self.device) for c in codes])
        if batch.shape[1] != self.tokens_per_image:
            raise ValueError(f"An image is exactly {self.tokens_per_image} codes, got {batch.shape[1]}")
        if batch.min() < 0 or batch.max() >= self.codebook_size:
            raise ValueError(f"Image codes must lie in [0, {self.codebook_size})")
        return list(self._pixels(self.quantizer.decode(batch)).clamp(0, 1).unbind(0))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, codes and commitment loss (EMA codebook updates happen in training mode)."""
        quantized, codes, commit = self.quantizer(self._latents(images))
        return self._pixels(quantized), codes, commit.mean()
