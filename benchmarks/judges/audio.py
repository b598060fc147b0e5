"""Audio front end shared by the audio judges: input checks (mixing/resampling by `anygpt.media`), log-mel features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

from anygpt.media import resample, to_mono


def waveform_at(wav: Tensor, sample_rate: int, target_rate: int, name: str = "waveform") -> Tensor:
    """A judge's input: [T], [1, T] or [C, T] at ``sample_rate`` -> mono [T] float32 at ``target_rate`` (mixing and
    resampling by `anygpt.media`); anything else, or an empty waveform, is an error naming the input."""
    if not isinstance(wav, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(wav).__name__}")
    if wav.dim() not in (1, 2):
        raise ValueError(f"{name}: expected shape [T] or [channels, T], got {tuple(wav.shape)}")
    if wav.numel() == 0:
        raise ValueError(f"{name}: empty waveform")
    return resample(to_mono(wav.detach().cpu())[0], sample_rate, target_rate)


class LogMel(nn.Module):
    """Log-mel spectrogram [..., T] -> [..., n_mels, frames], log(mel + 1e-5) with fixed scaling to about [-1, 1]."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, hop_length: int = 160, n_fft: int = 400) -> None:
        super().__init__()
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                  power=2.0, center=True)

    def forward(self, wav: Tensor) -> Tensor:
        with torch.autocast(wav.device.type, enabled=False):
            return (self.mel(wav.float()) + 1e-5).log().add(4.0).div(4.0)


def pad_batch(wavs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad 1-D waveforms to [B, T_max]; returns (batch, lengths)."""
    lengths = torch.tensor([w.numel() for w in wavs])
    out = torch.zeros(len(wavs), int(lengths.max()))
    for i, w in enumerate(wavs):
        out[i, : w.numel()] = w
    return out, lengths
