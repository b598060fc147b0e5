"""Reading and writing media files, for the whole package: one reader and one writer per media kind.

Every modality reads its inputs through a media kind (`MEDIA_KINDS`): ``image`` (Pillow, RGB), ``audio`` (soundfile,
mono, resampled), ``array`` (NumPy ``.npy``, never unpickled), or one a plugin registers with `register_media_kind`
(its reader, writer, check of decoded items and preview for transcripts and reports)::

    register_media_kind(MediaKind("trajectory", (".traj",), ".traj", None, "application/octet-stream",
                                  reader=read_traj, writer=write_traj, check=check_traj, preview=plot_traj))

A file that cannot be used raises `MediaError` naming the file and saying what to do, so data preparation can skip and
count it, and front ends can show the message instead of a stack trace. Tensors follow one convention: audio ``[1, T]``
float32 in [-1, 1], images ``[3, H, W]`` float32 in [0, 1].
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

Source = str | Path | bytes


class MediaError(ValueError):
    """A media file that cannot be used (unreadable, empty, too short, too large, NaN samples, ...)."""


def describe(source: Source | Any) -> str:
    """How errors name a source: its path, or its size when it is in-memory bytes."""
    return f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def _handle(source: Source) -> Any:
    return io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)


def _output(path: str | Path) -> Path:
    """``path``, its folder made first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------------------------------
def audio_info(source: Source) -> tuple[float, int, int]:
    """``(seconds, sample_rate, channels)`` from the file header, without decoding the samples (for size limits)."""
    import soundfile as sf

    try:
        info = sf.info(_handle(source))
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError or TypeError depending on the damage
        raise MediaError(f"cannot read audio file {describe(source)}: {err}. Expected a WAV/FLAC/OGG/MP3 file.") \
            from err
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def read_audio(source: Source, sample_rate: int | None = None, min_samples: int = 1,
               max_seconds: float | None = None) -> torch.Tensor:
    """Decode ``source`` (a path or the file's bytes) to a mono float32 waveform ``[1, T]``.

    Channels are averaged; another rate is resampled to ``sample_rate`` (None keeps the file's rate, see
    `read_audio_with_rate`). Clips shorter than ``min_samples`` after resampling (the tokenizer would produce no frame)
    and longer than ``max_seconds`` are rejected.
    """
    wav, rate = read_audio_with_rate(source, max_seconds=max_seconds)
    if sample_rate is not None:
        wav, rate = resample(wav, rate, sample_rate), sample_rate
    if wav.shape[-1] < min_samples:
        raise MediaError(f"audio file {describe(source)} is {wav.shape[-1] / rate * 1000:.1f} ms long, shorter than "
                         f"one token frame ({min_samples / rate * 1000:.1f} ms); nothing to tokenize.")
    return wav


def read_audio_with_rate(source: Source, max_seconds: float | None = None) -> tuple[torch.Tensor, int]:
    """A mono float32 waveform ``[1, T]`` at the file's own rate, and that rate (metrics/judges resample themselves)."""
    import soundfile as sf

    name = describe(source)
    if max_seconds is not None:
        seconds, _, _ = audio_info(source)
        if seconds > max_seconds:
            raise MediaError(f"audio file {name} is {seconds:.1f} s long; at most {max_seconds:g} s is accepted. "
                             "Cut it first (e.g. `ffmpeg -i in -t 30 out.wav`).")
    try:
        data, rate = sf.read(_handle(source), dtype="float32", always_2d=True)
    except Exception as err:
        raise MediaError(f"cannot decode audio file {name}: {err}. Expected a WAV/FLAC/OGG/MP3 file; re-encode it "
                         "(e.g. `ffmpeg -i in -ar 16000 -ac 1 out.flac`) or drop it.") from err
    if data.shape[0] == 0:
        raise MediaError(f"audio file {name} holds no samples (empty recording); drop it from the dataset.")
    wav = torch.from_numpy(np.ascontiguousarray(data.T)).mean(dim=0, keepdim=True)
    if not torch.isfinite(wav).all():
        raise MediaError(f"audio file {name} contains NaN or infinite samples; re-encode or drop it.")
    return wav, int(rate)


def to_mono(wav: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[T]``, ``[C, T]`` or ``[1, T]`` -> ``[1, T]`` float32 (channels averaged)."""
    wav = torch.as_tensor(wav, dtype=torch.float32)
    if wav.dim() == 1:
        return wav[None]
    if wav.dim() != 2:
        raise ValueError(f"expected a waveform [T] or [C, T], got shape {tuple(wav.shape)}")
    return wav.mean(dim=0, keepdim=True)


def resample(wav: torch.Tensor, orig_rate: int, target_rate: int) -> torch.Tensor:
    """Resample the last axis with torchaudio's windowed-sinc resampler (a no-op when the rates agree)."""
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    if orig_rate == target_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, int(orig_rate), int(target_rate))


def write_audio(wav: torch.Tensor, path: str | Path, sample_rate: int) -> Path:
    """Write a mono waveform (``[T]`` or ``[1, T]``) as 16-bit PCM; the format follows the suffix (.wav, .flac)."""
    import soundfile as sf

    path = _output(path)
    data = torch.as_tensor(wav).detach().float().reshape(-1).clamp(-1, 1).cpu().numpy()
    sf.write(str(path), data, int(sample_rate), subtype="PCM_16")
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------------
IMAGE_PREPROCESSING = ("anygpt", "release")
"""How an image file becomes RGB pixels, a recorded choice of each image codec (``Codec.image_preprocess``):

- ``anygpt``: EXIF rotation applied, transparency composited on white, 16/32-bit grayscale rescaled by its range;
- ``release``: exactly the original AnyGPT/SEED-2 code's ``Image.open(f).convert("RGB")``: no EXIF rotation, the alpha
  channel dropped (the colour stored under transparent pixels is kept), Pillow's own mode conversion. Released SEED-2
  checkpoints were trained on it, so they get the original's tokens only this way.
"""


def read_image(source: Source, max_pixels: int | None = None, preprocess: str = "anygpt"):
    """Open ``source`` (path or bytes) as an 8-bit RGB `PIL.Image`, the ``preprocess`` way (`IMAGE_PREPROCESSING`).

    Images above ``max_pixels`` are refused before decoding.
    """
    from PIL import Image, ImageOps

    if preprocess not in IMAGE_PREPROCESSING:
        raise ValueError(f"unknown image preprocessing {preprocess!r}; choose one of {IMAGE_PREPROCESSING}")
    name = describe(source)
    try:
        image = Image.open(_handle(source))
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise MediaError(f"image file {name} is {image.width}x{image.height} pixels; at most {max_pixels:,} "
                             "pixels are accepted. Downscale it first.")
        image.load()
        if preprocess == "release":
            image = image.convert("RGB")
        else:
            image = ImageOps.exif_transpose(image)
    except MediaError:
        raise
    except Exception as err:  # Pillow raises UnidentifiedImageError, OSError (truncated), DecompressionBombError...
        raise MediaError(f"cannot read image file {name}: {err}. Expected a file Pillow decodes (png, jpeg, webp, "
                         "...).") from err
    if image.width == 0 or image.height == 0:
        raise MediaError(f"image file {name} is empty ({image.width}x{image.height}).")
    if preprocess == "release":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("RGB")


def image_to_tensor(image) -> torch.Tensor:
    """8-bit RGB `PIL.Image` -> float32 ``[3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def write_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write ``[3, H, W]`` in [0, 1] as an 8-bit RGB image (format from the suffix)."""
    from PIL import Image

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor [3, H, W] in [0, 1], got shape {tuple(image.shape)}")
    array = (image.detach().float().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    path = _output(path)
    Image.fromarray(array, "RGB").save(path)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Arrays
# ----------------------------------------------------------------------------------------------------------------------
def read_array(source: Source) -> torch.Tensor:
    """A NumPy ``.npy`` file -> a tensor. Object arrays are refused: unpickling would run code from the file."""
    try:
        array = np.load(_handle(source), allow_pickle=False)
    except Exception as err:
        raise MediaError(f"cannot read array file {describe(source)}: {err}. Expected a .npy file of numbers "
                         "(np.save), without Python objects.") from err
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise MediaError(f"array file {describe(source)} holds {getattr(array, 'dtype', type(array))}, not numbers")
    return torch.from_numpy(np.ascontiguousarray(array))


def write_array(array: torch.Tensor, path: str | Path) -> Path:
    path = _output(path)
    np.save(path, torch.as_tensor(array).detach().cpu().numpy())
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Kinds
# ----------------------------------------------------------------------------------------------------------------------
Reader = Callable[..., torch.Tensor]  # (source, **hints) -> tensor; hints it does not use are ignored
Writer = Callable[..., Path]  # (data, path, **hints) -> the written path
Check = Callable[[Any], "str | None"]  # why a decoded item is not of this kind (None: it is)
Preview = Callable[[torch.Tensor], Any]  # an item -> a PIL image shown where no HTML element plays it (None: none)


@dataclass(frozen=True)
class MediaKind:
    """How files of one kind are recognised, read, written, checked and shown.

    Args:
        name: ``image``, ``audio``, ``array`` or a plugin's.
        suffixes: file suffixes accepted as input (lower case, with the dot).
        suffix: the suffix outputs are written with.
        html: the element a report or transcript shows it with (``img``, ``audio``) or None (a link, with ``preview``).
        mime: the MIME type of written files.
        reader: file (path or bytes) -> tensor; takes the hints ``sample_rate``, ``min_samples``, ``image_size``,
            ``image_preprocess`` (and must accept others, ``**_``).
        writer: (tensor, path) -> path; takes the hint ``sample_rate``.
        check: why a codec's decoded item is not of this kind (None when it is).
        preview: item -> a PIL image for pages (None: no preview).
    """

    name: str
    suffixes: tuple[str, ...]
    suffix: str
    html: str | None
    mime: str
    reader: Reader = field(default=None, compare=False)  # type: ignore[assignment]
    writer: Writer = field(default=None, compare=False)  # type: ignore[assignment]
    check: Check = field(default=None, compare=False)  # type: ignore[assignment]
    preview: Preview | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        missing = [n for n in ("reader", "writer", "check") if not callable(getattr(self, n))]
        if missing:
            raise TypeError(f"media kind {self.name!r} needs callables {missing}")

    def accepts(self, path: str | Path) -> bool:
        return str(path).lower().endswith(self.suffixes)


def _read_image_kind(source: Source, image_size: int | None = None, image_preprocess: str = "anygpt",
                     **_: Any) -> torch.Tensor:
    image = read_image(source, preprocess=image_preprocess)
    if image_size is not None and image.size != (image_size, image_size):
        from PIL import Image

        image = image.resize((image_size, image_size), Image.BICUBIC)
    return image_to_tensor(image)


def _read_audio_kind(source: Source, sample_rate: int | None = None, min_samples: int = 1, **_: Any) -> torch.Tensor:
    return read_audio(source, sample_rate, min_samples=min_samples)


def _write_audio_kind(data: torch.Tensor, path: str | Path, sample_rate: int | None = None, **_: Any) -> Path:
    if sample_rate is None:
        raise ValueError(f"writing audio to {path} needs its sample rate")
    return write_audio(data, path, sample_rate)


def _not_a_tensor(data: Any) -> str | None:
    if not isinstance(data, torch.Tensor):
        return f"a {type(data).__name__}, not a tensor"
    if data.numel() == 0:
        return f"an empty tensor of shape {tuple(data.shape)}"
    return None


def _check_image(data: Any) -> str | None:
    why = _not_a_tensor(data)
    if why is None and (data.dim() != 3 or data.shape[0] != 3 or not data.is_floating_point()):
        why = f"a {data.dtype} tensor of shape {tuple(data.shape)}, not an RGB image [3, H, W] of floats in [0, 1]"
    if why is None and not torch.isfinite(data).all():
        why = "an image with NaN or infinite values"
    return why


def _check_audio(data: Any) -> str | None:
    why = _not_a_tensor(data)
    if why is None and (data.dim() > 2 or (data.dim() == 2 and data.shape[0] != 1) or not data.is_floating_point()):
        why = f"a {data.dtype} tensor of shape {tuple(data.shape)}, not a mono waveform [T] or [1, T] of floats"
    if why is None and not torch.isfinite(data).all():
        why = "a waveform with NaN or infinite samples"
    return why


def _check_array(data: Any) -> str | None:
    why = _not_a_tensor(data)
    if why is None and data.dtype in (torch.bool, torch.complex64, torch.complex128):
        why = f"a {data.dtype} tensor, not numbers np.save writes plainly"
    return why


def _preview_array(data: torch.Tensor) -> Any:
    """A 2-D array (a depth map) as a grayscale image, min to max; None for other shapes."""
    from PIL import Image

    array = torch.as_tensor(data).float()
    if array.dim() != 2 or array.numel() == 0 or min(array.shape) < 2:
        return None
    lo, hi = float(array.min()), float(array.max())
    scaled = ((array - lo) / (hi - lo) if hi > lo else array * 0) * 255
    return Image.fromarray(scaled.round().to(torch.uint8).numpy(), "L")


MEDIA_KINDS: dict[str, MediaKind] = {}


def register_media_kind(kind: MediaKind) -> MediaKind:
    """Make ``kind`` known (reading, writing, checking and showing its files); registering it again is harmless. A
    name or input suffix another kind has is refused, naming both."""
    existing = MEDIA_KINDS.get(kind.name)
    if existing is not None:
        if existing == kind:
            return existing
        raise ValueError(f"media kind {kind.name!r} is already registered (suffixes {existing.suffixes}); choose "
                         "another name")
    for other in MEDIA_KINDS.values():
        shared = set(kind.suffixes) & set(other.suffixes)
        if shared:
            raise ValueError(f"media kind {kind.name!r} claims suffix {sorted(shared)[0]!r}, which the registered "
                             f"media kind {other.name!r} reads; give it its own suffix")
    MEDIA_KINDS[kind.name] = kind
    return kind


for _kind in (
    MediaKind("image", (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"), ".png", "img", "image/png",
              _read_image_kind, lambda data, path, **_: write_image(data, path), _check_image),
    MediaKind("audio", (".wav", ".flac", ".ogg", ".mp3", ".opus"), ".wav", "audio", "audio/wav", _read_audio_kind,
              _write_audio_kind, _check_audio),
    MediaKind("array", (".npy",), ".npy", None, "application/octet-stream", lambda source, **_: read_array(source),
              lambda data, path, **_: write_array(data, path), _check_array, _preview_array),
):
    register_media_kind(_kind)


def media_kind(name: str) -> MediaKind:
    try:
        return MEDIA_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown media kind {name!r}; known: {sorted(MEDIA_KINDS)}. A plugin registers its own with "
                       "anygpt.media.register_media_kind") from None


# ----------------------------------------------------------------------------------------------------------------------
# By kind
# ----------------------------------------------------------------------------------------------------------------------
def read_media(kind: MediaKind | str, source: Source, sample_rate: int | None = None, min_samples: int = 1,
               image_size: int | None = None, image_preprocess: str = "anygpt") -> torch.Tensor:
    """Read a file of ``kind`` as a tensor: audio ``[1, T]`` (resampled to ``sample_rate``, at least ``min_samples``
    long), images ``[3, S, S]`` in [0, 1] (read the ``image_preprocess`` way, then bicubic resize to ``image_size``
    when given, no crop), arrays as stored, a plugin kind as its reader returns it."""
    kind = media_kind(kind) if isinstance(kind, str) else kind
    return kind.reader(source, sample_rate=sample_rate, min_samples=min_samples, image_size=image_size,
                       image_preprocess=image_preprocess)


def write_media(kind: MediaKind | str, data: torch.Tensor, path: str | Path, sample_rate: int | None = None) -> Path:
    """Write one item of ``kind`` (audio needs its ``sample_rate``); the folder is made first."""
    kind = media_kind(kind) if isinstance(kind, str) else kind
    return kind.writer(data, _output(path), sample_rate=sample_rate)


def kind_of_file(path: str | Path) -> MediaKind | None:
    """The media kind a file's suffix says it holds, the longest matching suffix winning (None for an unknown one)."""
    name = str(path).lower()
    matches = [(len(s), kind) for kind in MEDIA_KINDS.values() for s in kind.suffixes if name.endswith(s)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def preview_png(kind: MediaKind, path: str | Path) -> bytes | None:
    """The kind's preview of a file as PNG bytes (None: the kind has none, the file cannot be read, or the item has no
    preview)."""
    if kind.preview is None:
        return None
    try:
        image = kind.preview(kind.reader(path))
    except MediaError:
        return None
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
