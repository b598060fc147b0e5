"""Audio file I/O for the music tokenizers: any file soundfile reads, mixed to mono and resampled.

Errors name the file and say what was wrong, so a data-preparation run can skip and count bad files.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch


class AudioLoadError(ValueError):
    """An audio file could not be used (unreadable, empty, too short)."""


def describe(source: str | Path | bytes) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def load_audio(source: str | Path | bytes, sample_rate: int, min_samples: int = 1) -> torch.Tensor:
    """Read ``source`` (a path or the file's bytes) -> mono float32 waveform ``[T]`` at ``sample_rate``.

    Channels are averaged (stereo and multi-channel files are accepted), integer PCM is scaled to [-1, 1] by soundfile,
    and other rates are resampled with torchaudio's windowed-sinc resampler.
    """
    import soundfile as sf

    name = describe(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError... depending on the failure
        raise AudioLoadError(
            f"Cannot read audio file {name}: {err}. Expected a file libsndfile decodes (wav, flac, ogg, mp3)."
        ) from err
    if data.shape[0] == 0:
        raise AudioLoadError(f"Audio file {name} has no samples (zero-length audio).")
    wav = torch.from_numpy(data).mean(dim=1)
    if not torch.isfinite(wav).all():
        raise AudioLoadError(f"Audio file {name} contains NaN or infinite samples.")
    wav = resample(wav, rate, sample_rate)
    if wav.numel() < min_samples:
        raise AudioLoadError(
            f"Audio file {name} is too short: {wav.numel()} samples at {sample_rate} Hz, the "
            f"tokenizer needs at least {min_samples} (one frame)."
        )
    return wav


def resample(wav: torch.Tensor, orig_rate: int, target_rate: int) -> torch.Tensor:
    """Resample along the last axis (a no-op when the rates agree)."""
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"Sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, int(orig_rate), int(target_rate))


def save_audio(wav: torch.Tensor, path: str | Path, sample_rate: int) -> None:
    """Write a mono waveform ``[T]`` (or ``[1, T]``) as 16-bit PCM; the format follows the file suffix."""
    import soundfile as sf

    wav = wav.detach().float().cpu().reshape(-1).clamp(-1, 1).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sample_rate, subtype="PCM_16")
