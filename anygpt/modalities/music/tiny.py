"""A tiny SEANet codec for the demo corpus: 16 kHz, 25 frames/s x 2 codebooks of 256 = 50 tokens per second.

It trains on a CPU in minutes (``anygpt fit --config experiments/tokenizers/demo_music.yaml``) with the waveform L1 +
multi-scale log-mel + commitment losses of `SEANetCodec`; no discriminator by default (``adversarial_weight`` turns
Encodec's on), so its output is smoother than a GAN-trained codec's. The trained weights ship in
``anygpt/assets/tokenizers/music``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anygpt.modalities.music.codec import SEANetCodec

ASSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "tokenizers" / "music"


class TinyMusicCodec(SEANetCodec):
    """`SEANetCodec` with demo-sized defaults; ``name`` is "music" like the paper's tokenizer."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_filters: int = 8,
        ratios: tuple[int, ...] = (8, 5, 4, 4),
        dimension: int = 64,
        n_q: int = 2,
        bins: int = 256,
        lstm: int = 1,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 0.1,
        commit_weight: float = 0.01,
        vq_warmup_steps: int = 150,
        lr: float = 3e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            n_filters=n_filters,
            ratios=ratios,
            dimension=dimension,
            n_q=n_q,
            bins=bins,
            lstm=lstm,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commit_weight=commit_weight,
            vq_warmup_steps=vq_warmup_steps,
            lr=lr,
            **kwargs,
        )

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, trust_code: bool = False, **overrides: Any
                        ) -> TinyMusicCodec:
        """Load a `save_pretrained` directory; without ``path``, the checkpoint shipped with the package."""
        return super().from_pretrained(ASSET_DIR if path is None else path, trust_code=trust_code, **overrides)
