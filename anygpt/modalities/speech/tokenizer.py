"""A SpeechTokenizer-compatible codec: SEANet encoder with a BiLSTM, 8-level RVQ, SEANet decoder, semantic projection.

The module tree and parameter names equal those of the released SpeechTokenizer (``encoder.model.0.conv.conv.weight_g``,
``quantizer.vq.layers.0._codebook.embed``, ``transform.weight``...), so its ``config.json`` + checkpoint load directly.
The convolution, residual and RVQ building blocks come from the ``encodec`` package (SpeechTokenizer's are derived from
them); the one difference, a bidirectional LSTM at the end of the encoder whose output is twice as wide, is built here.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from encodec.modules import SConv1d, SEANetDecoder, SEANetEncoder
from encodec.quantization.core_vq import ResidualVectorQuantization
from torch import nn

from anygpt.modalities.spectral import SpectralDecoder, SpectralEncoder
from anygpt.modalities.vq import enable_dead_code_restarts


@dataclass
class SpeechTokenizerConfig:
    """The fields of SpeechTokenizer's ``config.json`` that define the network (the rest are training settings)."""

    n_filters: int = 64
    strides: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    dimension: int = 1024
    semantic_dimension: int = 768
    bidirectional: bool = True
    dilation_base: int = 2
    residual_kernel_size: int = 3
    n_residual_layers: int = 1
    lstm_layers: int = 2
    activation: str = "ELU"
    sample_rate: int = 16000
    codebook_size: int = 1024
    n_q: int = 8
    # training only: codes whose EMA usage falls below this are re-seeded from the batch (SpeechTokenizer: 2, for
    # large batches; with small CPU batches of a few hundred frames, 2 would re-seed nearly every code every step)
    dead_code_threshold: float = 2.0
    # "seanet" (SpeechTokenizer's waveform encoder/decoder) or "spectral" (`anygpt.modalities.spectral`: log-mel
    # encoder, inverse-STFT decoder; n_filters is its width, strides = [STFT hop, downsampling ratios...])
    architecture: str = "seanet"
    n_fft: int = 1024  # spectral only: STFT size of the decoder's output (and of the encoder's mel frames)
    n_mels: int = 80  # spectral only
    blocks: int = 2  # spectral only: ConvNeXt blocks per stage
    # training only: the probability that a step decodes from the first k levels only (k uniform in 1..n_q), as
    # SoundStream's quantizer dropout; the decoder then copes with partial (e.g. SoundStorm-predicted) codes
    quantizer_dropout: float = 0.0

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> SpeechTokenizerConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})

    @classmethod
    def from_json(cls, path: str | Path) -> SpeechTokenizerConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BiLSTM(nn.Module):
    """Bidirectional LSTM over the time axis of a ``[B, C, T]`` tensor: ``2C`` output channels, the input added to both
    halves as a skip connection."""

    def __init__(self, dimension: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dimension, dimension, num_layers, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)  # [T, B, C]
        y, _ = self.lstm(x)
        return (y + torch.cat([x, x], dim=-1)).permute(1, 2, 0)


class ResidualQuantizer(nn.Module):
    """Holds the RVQ under the attribute name ``vq`` (the checkpoint's ``quantizer.vq.layers.N._codebook.*``)."""

    def __init__(self, dimension: int, n_q: int, codebook_size: int, decay: float = 0.99, kmeans_iters: int = 50,
                 threshold_ema_dead_code: float = 2.0) -> None:
        super().__init__()
        self.n_q = n_q
        self.vq = ResidualVectorQuantization(num_quantizers=n_q, dim=dimension, codebook_size=codebook_size,
                                             decay=decay, kmeans_init=True, kmeans_iters=kmeans_iters,
                                             threshold_ema_dead_code=threshold_ema_dead_code)

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                       torch.Tensor]:
        """Training/forward pass: (quantized sum, codes ``[n_q, B, F]``, mean commitment loss, level-1 quantized)."""
        residual, levels, codes, losses = x, [], [], []
        for layer in self.vq.layers[: n_q or self.n_q]:
            quantized, index, loss = layer(residual)
            residual = residual - quantized.detach()
            levels.append(quantized)
            codes.append(index)
            losses.append(loss)
        return sum(levels), torch.stack(codes), torch.stack(losses).mean(), levels[0]

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        return self.vq.encode(x, n_q=n_q or self.n_q)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(codes)


class SpeechTokenizerModel(nn.Module):
    """The codec network. ``encode(wav [B, 1, T]) -> codes [n_q, B, T // hop]``; ``decode(codes) -> wav``."""

    def __init__(self, config: SpeechTokenizerConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.architecture not in ("seanet", "spectral"):
            raise ValueError(f"architecture must be 'seanet' or 'spectral', got {c.architecture!r}")
        if c.architecture == "spectral":
            stft_hop, ratios = c.strides[0], c.strides[1:]
            encoder: nn.Module = SpectralEncoder(c.sample_rate, stft_hop, c.n_fft, c.n_mels, c.n_filters, c.dimension,
                                                 ratios, c.blocks, c.lstm_layers)
            decoder: nn.Module = SpectralDecoder(c.dimension, c.n_filters, stft_hop, c.n_fft, ratios, c.blocks)
        else:
            seanet = dict(channels=1, dimension=c.dimension, n_filters=c.n_filters,
                          n_residual_layers=c.n_residual_layers, ratios=list(c.strides), activation=c.activation,
                          dilation_base=c.dilation_base, residual_kernel_size=c.residual_kernel_size,
                          lstm=c.lstm_layers)
            encoder, decoder = SEANetEncoder(**seanet), SEANetDecoder(**seanet)
            if c.bidirectional and c.lstm_layers:
                # encodec's encoder ends [..., SLSTM, act, SConv1d]: swap in the BiLSTM and a final conv twice as wide.
                width = c.n_filters * 2 ** len(c.strides)
                encoder.model[-3] = BiLSTM(width, c.lstm_layers)
                encoder.model[-1] = SConv1d(2 * width, c.dimension, 7, norm="weight_norm", pad_mode="reflect")
        # registration order = the release's state-dict order: encoder, transform, quantizer, decoder
        self.encoder = encoder
        self.transform = (nn.Linear(c.dimension, c.semantic_dimension) if c.dimension != c.semantic_dimension
                          else nn.Identity())
        self.quantizer = ResidualQuantizer(c.dimension, c.n_q, c.codebook_size,
                                           threshold_ema_dead_code=c.dead_code_threshold)
        enable_dead_code_restarts(self.quantizer)  # encodec's own restarts are undone by its EMA update
        self.decoder = decoder
        if c.architecture == "seanet":
            self._init_for_training()

    def _init_for_training(self) -> None:
        """Training init. PyTorch's defaults shrink the signal ~2x per conv and add biases of +-1/sqrt(fan_in), so at
        init the encoder output barely depends on speech-level input (~0.1) and training crawls. Zero conv biases, and
        encoder weight-norm gains of sqrt(2) (ELU ~ ReLU gain), let the signal through; the decoder keeps the default
        gains so its first outputs stay quiet. Loaded checkpoints overwrite all of it."""
        for part in (self.encoder, self.decoder):
            for module in part.modules():
                if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                    if hasattr(module, "weight_g") and part is self.encoder:
                        nn.init.constant_(module.weight_g, math.sqrt(2.0))

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def encode(self, wav: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        return self.quantizer.encode(self.encoder(wav), n_q)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.decode(codes))

    def forward(self, wav: torch.Tensor, n_q: int | None = None) -> dict[str, torch.Tensor]:
        """Reconstruction, codes, commitment loss, semantic feature (level-1 quantized through ``transform``).

        In training, with probability ``quantizer_dropout`` the reconstruction uses only the first k levels."""
        if n_q is None and self.training and random.random() < self.config.quantizer_dropout:
            n_q = random.randint(1, self.config.n_q)
        quantized, codes, commit_loss, first = self.quantizer(self.encoder(wav), n_q)
        semantic = self.transform(first.transpose(1, 2))  # [B, F, semantic_dimension]
        return {"audio": self.decoder(quantized), "codes": codes, "commit_loss": commit_loss, "semantic": semantic}

    # -- the release format -------------------------------------------------------------------------------------------
    @classmethod
    def from_release(cls, config_path: str | Path, checkpoint_path: str | Path) -> SpeechTokenizerModel:
        """Load SpeechTokenizer's ``config.json`` + state dict (``SpeechTokenizer.pt``, AnyGPT's ``ckpt.dev``)."""
        config_path, checkpoint_path = Path(config_path), Path(checkpoint_path)
        for needed in (config_path, checkpoint_path):
            if not needed.exists():
                raise FileNotFoundError(f"{needed} does not exist: pass SpeechTokenizer's config.json and checkpoint "
                                        "(e.g. fnlp/AnyGPT-speech-modules/speechtokenizer/{config.json,ckpt.dev}).")
        model = cls(SpeechTokenizerConfig.from_json(config_path))
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f"{checkpoint_path} does not match the SpeechTokenizer layout of {config_path}: "
                           f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                           f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        return model.eval()
