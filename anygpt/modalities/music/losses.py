"""Reconstruction losses for waveform codecs: multi-scale log-mel L1 (the spectral term of Encodec's recipe)."""

from __future__ import annotations

import torch
from torch import nn


class MultiScaleMelLoss(nn.Module):
    """Mean over scales of L1 between log-mel spectrograms, at several STFT window sizes.

    Several windows keep both transients (short windows) and pitch (long windows) in view; the log compresses the
    dynamic range so quiet passages count.
    """

    def __init__(self, sample_rate: int, n_ffts: tuple[int, ...] = (256, 512, 1024, 2048), n_mels: int = 64,
                 eps: float = 1e-5) -> None:
        super().__init__()
        import torchaudio

        self.eps = eps
        self.mels = nn.ModuleList(torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n, hop_length=n // 4,
                                                                       n_mels=min(n_mels, n // 4), power=1.0,
                                                                       center=True) for n in n_ffts)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum((torch.log(mel(estimate) + self.eps) - torch.log(mel(target) + self.eps)).abs().mean()
                   for mel in self.mels) / len(self.mels)
