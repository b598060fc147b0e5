"""A spectral encoder/decoder pair for small audio codecs: log-mel in, STFT out (Vocos-style inverse STFT head).

A waveform decoder (SEANet) spends most of its compute upsampling to the sample rate; here the network runs at the
STFT frame rate (100 Hz at 16 kHz with hop 160) and the inverse STFT does the last step, so a codec of a few million
parameters trains on one CPU core in hours instead of days. The encoder reads a log-mel spectrogram; the decoder
predicts log-magnitude and phase per STFT bin (Siuzdak, "Vocos", 2023). Both blocks keep SEANet's interface
(``[B, 1, T] -> [B, dimension, T // hop]`` and back), so they slot into `SpeechTokenizerModel` and `SEANetCodec` in
place of the SEANet pair; ``hop = stft_hop * prod(ratios)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (kernel 7) -> LayerNorm -> pointwise MLP, scaled residual (ConvNeXt, 1-D)."""

    def __init__(self, channels: int, mult: int = 3, kernel_size: int = 7, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pw1 = nn.Linear(channels, mult * channels)
        self.pw2 = nn.Linear(mult * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, N]
        y = self.norm(self.dwconv(x).transpose(1, 2))
        y = self.pw2(F.gelu(self.pw1(y))) * self.gamma
        return x + y.transpose(1, 2)


class _BiLSTM(nn.Module):
    """Bidirectional LSTM over ``[B, C, N]`` with a residual; the two directions are summed (output stays ``C``)."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.transpose(1, 2))
        forward, backward = y.chunk(2, dim=-1)
        return x + (forward + backward).transpose(1, 2)


class SpectralEncoder(nn.Module):
    """``wav [B, 1, T] -> [B, dimension, T // hop]``: log-mel frames, ConvNeXt stages with strided downsampling between
    them, an optional BiLSTM at the final rate (context for content units), a projection to ``dimension``."""

    def __init__(self, sample_rate: int, stft_hop: int, n_fft: int, n_mels: int, channels: int, dimension: int,
                 ratios: Sequence[int], blocks: int = 2, lstm_layers: int = 1) -> None:
        super().__init__()
        import torchaudio

        self.stft_hop, self.ratios = stft_hop, list(ratios)
        self.hop_length = stft_hop * math.prod(ratios)
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=stft_hop, n_mels=n_mels,
                                                        power=1.0, center=True)
        layers: list[nn.Module] = [nn.Conv1d(n_mels, channels, 7, padding=3)]
        for r in self.ratios:
            layers += [ConvNeXtBlock(channels) for _ in range(blocks)]
            layers.append(nn.Conv1d(channels, channels, r, stride=r))
        layers += [ConvNeXtBlock(channels) for _ in range(blocks)]
        if lstm_layers:
            layers.append(_BiLSTM(channels, lstm_layers))
        layers += [nn.LayerNorm(channels)]
        self.body = nn.ModuleList(layers)
        self.proj = nn.Conv1d(channels, dimension, 1)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T]`` -> log-mel ``[B, n_mels, ceil(T / hop) * hop / stft_hop]`` (right-padded to whole frames)."""
        frames = -(-wav.shape[-1] // self.hop_length)
        wav = F.pad(wav, (0, frames * self.hop_length - wav.shape[-1]))
        mel = self.mel(wav[:, 0])[..., : frames * self.hop_length // self.stft_hop]
        return mel.clamp(min=1e-5).log()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.features(wav)
        for layer in self.body:
            x = layer(x.transpose(1, 2)).transpose(1, 2) if isinstance(layer, nn.LayerNorm) else layer(x)
        return self.proj(x)


class SpectralDecoder(nn.Module):
    """``[B, dimension, F] -> wav [B, 1, F * hop]``: ConvNeXt stages with transposed-conv upsampling to the STFT frame
    rate, then per-bin log-magnitude and phase, and an inverse STFT."""

    def __init__(self, dimension: int, channels: int, stft_hop: int, n_fft: int, ratios: Sequence[int],
                 blocks: int = 2) -> None:
        super().__init__()
        self.stft_hop, self.n_fft = stft_hop, n_fft
        self.hop_length = stft_hop * math.prod(ratios)
        layers: list[nn.Module] = [nn.Conv1d(dimension, channels, 7, padding=3)]
        for r in reversed(list(ratios)):
            layers += [ConvNeXtBlock(channels) for _ in range(blocks)]
            layers.append(nn.ConvTranspose1d(channels, channels, r, stride=r))
        layers += [ConvNeXtBlock(channels) for _ in range(blocks)]
        self.body = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, n_fft + 2)  # (n_fft / 2 + 1) log-magnitudes, as many phases
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        frames = z.shape[-1] * self.hop_length // self.stft_hop
        x = self.head(self.norm(self.body(z).transpose(1, 2)))  # [B, frames, n_fft + 2]
        log_mag, phase = x.float().transpose(1, 2).chunk(2, dim=1)
        spec = torch.polar(log_mag.clamp(max=6.0).exp(), phase)  # exp(6) ~ 400: a ceiling that keeps early steps sane
        wav = torch.istft(spec, self.n_fft, self.stft_hop, window=self.window, center=True,
                          length=frames * self.stft_hop)
        return wav.unsqueeze(1)
