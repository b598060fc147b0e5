"""Reading and writing speech files: any rate, any channel count in; mono float32 at the tokenizer's rate out.

Bad files fail here with an `AudioFileError` that names the file and says what is wrong, so the data pipeline can skip
and count them instead of crashing somewhere inside a convolution.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch


class AudioFileError(ValueError):
    """A speech file that cannot be used (unreadable, empty, shorter than one token frame)."""


def _describe(source: str | Path | bytes) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def read_audio(source: str | Path | bytes, sample_rate: int, min_samples: int = 1) -> torch.Tensor:
    """Decode ``source`` (a path or the file's bytes) to a mono waveform ``[1, T]`` at ``sample_rate``.

    Multi-channel audio is averaged to mono; other rates (8, 22.05, 24, 44.1, 48 kHz, ...) are resampled with
    torchaudio's windowed-sinc resampler. Clips shorter than ``min_samples`` (after resampling) are rejected: the
    tokenizer would produce no frame for them.
    """
    import soundfile as sf

    name = _describe(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError or TypeError depending on the damage
        raise AudioFileError(f"cannot decode audio file {name}: {e}. Expected a WAV/FLAC/OGG file; "
                             "re-encode it (e.g. `ffmpeg -i in -ar 16000 -ac 1 out.flac`) or drop it.") from e
    if data.size == 0:
        raise AudioFileError(f"audio file {name} holds no samples (empty recording); drop it from the dataset.")
    wav = torch.from_numpy(data.T.copy()).mean(dim=0, keepdim=True)  # [C, T] -> [1, T]
    wav = resample(wav, rate, sample_rate)
    if wav.shape[-1] < min_samples:
        raise AudioFileError(f"audio file {name} is {wav.shape[-1] / sample_rate * 1000:.1f} ms long, shorter than one "
                             f"token frame ({min_samples / sample_rate * 1000:.1f} ms); nothing to tokenize.")
    if not torch.isfinite(wav).all():
        raise AudioFileError(f"audio file {name} contains NaN/Inf samples.")
    return wav


def resample(wav: torch.Tensor, orig_rate: int, target_rate: int) -> torch.Tensor:
    """Resample the last axis from ``orig_rate`` to ``target_rate`` (no-op when equal)."""
    if orig_rate == target_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, int(orig_rate), int(target_rate))


def write_audio(wav: torch.Tensor, path: str | Path, sample_rate: int) -> None:
    """Write a mono waveform (``[T]`` or ``[1, T]``) as 16-bit PCM; the format follows the suffix (.wav, .flac)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = wav.detach().float().reshape(-1).clamp(-1, 1).cpu().numpy()
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
