"""A tiny SEANet codec for the demo corpus: 16 kHz, 25 frames/s x 2 codebooks of 256 = 50 tokens per second.

It trains on a CPU in minutes (``anygpt fit --config experiments/tokenizers/demo_music.yaml``, `SEANetTrainer`'s
waveform L1 + multi-scale log-mel + commitment losses; no discriminator by default, so its output is smoother than a
GAN-trained codec's). The trained weights ship in ``anygpt/assets/tokenizers/music``.
"""

from __future__ import annotations

from typing import Any

from anygpt.modalities.music.codec import SEANetCodec


class TinyMusicCodec(SEANetCodec):
    """`SEANetCodec` with demo-sized defaults; it tokenizes "music" like the paper's tokenizer."""

    default_checkpoint = "anygpt-assets:tokenizers/music"

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
        **kwargs: Any,
    ) -> None:
        super().__init__(sample_rate=sample_rate, n_filters=n_filters, ratios=ratios, dimension=dimension, n_q=n_q,
                         bins=bins, lstm=lstm, kmeans_iters=kmeans_iters,
                         threshold_ema_dead_code=threshold_ema_dead_code, **kwargs)
