"""A tiny VQ autoencoder for the demo corpus: a 64x64 image <-> 32 tokens (a 4x4 grid, two codes per cell).

Trains on a CPU in minutes (``anygpt fit --config experiments/tokenizers/demo_image.yaml``): L1 + MSE reconstruction
plus the commitment loss; the codebook is learned by EMA with k-means initialisation and dead-code restarts (the
`encodec` package's `VectorQuantization`). Few tokens keep demo sequences short for the LLM while colour, shape and
position stay recognisable. The trained weights ship in ``anygpt/assets/tokenizers/image``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.modalities.base import Modality, SpanStructure
from anygpt.modalities.image.io import open_rgb, save_image, to_tensor
from anygpt.modalities.vq import enable_dead_code_restarts

ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "tokenizers" / "image"


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyImageTokenizer(Modality):
    """VQ autoencoder with a ``grid x grid`` latent and ``groups`` codes per cell (tokens = grid^2 * groups).

    Args:
        image_size: side of the square images it reads and writes (`load` resizes to it).
        grid: latent side; ``image_size / grid`` must be a power of two (one stride-2 stage per halving).
        groups: codes per grid cell (the cell's latent is split into ``groups`` vectors of ``code_dim``).
        codebook_size, code_dim: the shared codebook.
        channels: widths of the stages, from full resolution to the grid (one per halving).
        blocks: residual blocks per stage (none in the encoder's full-resolution stage, ``blocks - 1`` in the
            decoder's, where sharp edges are drawn).
        lr_decay: cosine learning-rate decay to 5% over the trainer's ``max_steps`` (after the warmup).
        patch: pixels are folded into channels in ``patch x patch`` blocks at the input and unfolded at the output
            (pixel (un)shuffle), so every convolution runs at ``image_size / patch``: the cost of a stage drops
            ``patch^2``-fold and the widths can grow instead.
    """

    name = "image"
    markers = ("<soim>", "<eoim>")
    token_format = "<👀{}>"

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
        commit_weight: float = 0.02,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        blocks: int = 1,
        lr_decay: bool = False,
        patch: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        from encodec.quantization.core_vq import VectorQuantization

        stages = (image_size // (grid * patch)).bit_length() - 1
        if grid * patch * 2**stages != image_size or len(channels) != stages:
            raise ValueError(
                f"image_size/(grid*patch) = {image_size}/({grid}*{patch}) must be a power of two 2^n with "
                f"len(channels) == n (got {len(channels)} channels)"
            )
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
        self.quantizer = VectorQuantization(
            dim=code_dim,
            codebook_size=codebook_size,
            decay=decay,
            kmeans_init=True,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=1.0,
        )
        enable_dead_code_restarts(self.quantizer)

    # -- identity --------------------------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return int(self.hparams.codebook_size)

    @property
    def tokens_per_image(self) -> int:
        return self.hparams.grid**2 * self.hparams.groups

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure(fixed_length=self.tokens_per_image)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, trust_code: bool = False, **overrides: Any
                        ) -> TinyImageTokenizer:
        """Load a `save_pretrained` directory; without ``path``, the checkpoint shipped with the package."""
        return super().from_pretrained(ASSET_DIR if path is None else path, trust_code=trust_code, **overrides)

    # -- raw I/O ---------------------------------------------------------------------------------------------------
    def load(self, source: str | Path | bytes) -> torch.Tensor:
        """Image file -> ``[3, image_size, image_size]`` in [0, 1] (bicubic resize, no crop)."""
        from PIL import Image

        size = self.hparams.image_size
        image = open_rgb(source)
        if image.size != (size, size):
            image = image.resize((size, size), Image.BICUBIC)
        return to_tensor(image)

    def save(self, data: torch.Tensor, path: str | Path) -> None:
        save_image(data, path)

    # -- networks --------------------------------------------------------------------------------------------------
    def _latents(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` in [0, 1] -> ``[B, code_dim, tokens]`` (cells row-major, the groups of a cell adjacent)."""
        h = self.hparams
        z = self.encoder(images * 2 - 1)  # [B, groups * code_dim, g, g]
        b = z.shape[0]
        z = z.reshape(b, h.groups, h.code_dim, h.grid * h.grid).permute(0, 2, 3, 1)  # [B, D, cells, groups]
        return z.reshape(b, h.code_dim, -1)

    def _pixels(self, quantized: torch.Tensor) -> torch.Tensor:
        h = self.hparams
        b = quantized.shape[0]
        z = quantized.reshape(b, h.code_dim, h.grid * h.grid, h.groups).permute(0, 3, 1, 2)
        z = z.reshape(b, h.groups * h.code_dim, h.grid, h.grid)
        return (self.decoder(z) + 1) / 2

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        size = self.hparams.image_size
        if images.dim() != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(f"Expected images [3, {size}, {size}] in [0, 1] (use load()), got {tuple(images.shape)}")
        return images.to(self.device, torch.float32)

    @torch.inference_mode()
    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Images ``[3, S, S]`` in [0, 1] -> codes ``[tokens]`` each."""
        if not items:
            return []
        codes = self.quantizer.encode(self._latents(self._check(torch.stack(list(items)))))  # [B, tokens]
        return list(codes.unbind(0))

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Codes ``[tokens]`` -> images ``[3, S, S]`` in [0, 1]."""
        if not codes:
            return []
        batch = torch.stack([c.reshape(-1).long().to(self.device) for c in codes])
        if batch.shape[1] != self.tokens_per_image:
            raise ValueError(f"An image is exactly {self.tokens_per_image} codes, got {batch.shape[1]}")
        if batch.min() < 0 or batch.max() >= self.codebook_size:
            raise ValueError(f"Image codes must lie in [0, {self.codebook_size})")
        return list(self._pixels(self.quantizer.decode(batch)).clamp(0, 1).unbind(0))

    # -- training --------------------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, codes and commitment loss (EMA codebook updates happen in training mode)."""
        quantized, codes, commit = self.quantizer(self._latents(images))
        return self._pixels(quantized), codes, commit.mean()

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        images = batch["image"] if isinstance(batch, dict) else batch
        recon, codes, commit = self(images)
        l1, mse = F.l1_loss(recon, images), F.mse_loss(recon, images)
        loss = l1 + mse + self.hparams.commit_weight * commit
        psnr = 10 * torch.log10(1.0 / F.mse_loss(recon.clamp(0, 1), images, reduction="none").mean((1, 2, 3)))
        stats = {
            "loss": loss,
            "l1": l1,
            "mse": mse,
            "commit": commit,
            "psnr": psnr.mean(),
            "perplexity": _perplexity(torch.bincount(codes.reshape(-1), minlength=self.codebook_size)),
        }
        if stage == "val":
            self._val_counts = self._val_counts + torch.bincount(codes.reshape(-1), minlength=self.codebook_size)
        self.log_dict(
            {f"{stage}/{k}": v.detach() for k, v in stats.items()}, prog_bar=stage == "val", batch_size=images.shape[0]
        )
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(self.codebook_size, dtype=torch.long, device=self.device)

    def on_validation_epoch_end(self) -> None:
        """Codebook usage over the whole validation set: perplexity and fraction of entries used at least once."""
        counts = self.trainer.strategy.reduce(self._val_counts.float(), reduce_op="sum")
        self.log_dict({"val/set_perplexity": _perplexity(counts), "val/used_fraction": (counts > 0).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = self.trainer.max_steps if self.hparams.lr_decay else -1

        def factor(step: int) -> float:  # 100 warmup steps, then flat (or cosine to 5% with lr_decay)
            if step < 100 or total <= 100:
                return min(1.0, (step + 1) / 100)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - 100) / (total - 100))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram: the number of equally used codes it is worth."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
