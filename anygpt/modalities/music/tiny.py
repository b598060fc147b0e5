"""A tiny music codec for the demo corpus: 16 kHz, 25 frames/s x 2 codebooks of 256 = 50 tokens per second.

Two networks fit this interface (``architecture``, `SEANetCodec`): a SEANet waveform codec (the class defaults) and the
spectral pair of `anygpt.modalities.spectral` (log-mel encoder with a BiLSTM, inverse-STFT decoder), which is what the
weights in ``anygpt/assets/tokenizers/music`` use: ``anygpt fit --config experiments/tokenizers/demo_music.yaml``
trains them on one CPU core (`SEANetTrainer`'s multi-scale log-mel + commitment losses). The spectral network resolves
pitch where the SEANet one at this size blurred it: on the demo test clips its reconstructions score CLAP 0.650 against
their captions, the SEANet codec's 0.124, the real clips 0.893 (``python -m benchmarks.perf.tokenizer_ceilings --only
music``)."""

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
