"""Image file I/O: any file Pillow opens -> RGB, with grayscale, palette, alpha and 16-bit images handled.

Errors name the file, so data preparation can skip and count bad images.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch


class ImageLoadError(ValueError):
    """An image file could not be used (unreadable, truncated, empty)."""


def describe(source: str | Path | bytes) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def open_rgb(source: str | Path | bytes):
    """Open ``source`` (path or bytes) as an 8-bit RGB `PIL.Image`.

    Transparent images are composited on white; 16-bit and 32-bit grayscale are rescaled by their full range (Pillow's
    own conversion would clip them); EXIF rotation is applied.
    """
    from PIL import Image, ImageOps

    name = describe(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception as err:  # Pillow raises UnidentifiedImageError, OSError (truncated), ValueError...
        raise ImageLoadError(
            f"Cannot read image file {name}: {err}. Expected a file Pillow decodes (png, jpeg, webp, ...)."
        ) from err
    if image.width == 0 or image.height == 0:
        raise ImageLoadError(f"Image file {name} is empty ({image.width}x{image.height}).")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def to_tensor(image) -> torch.Tensor:
    """8-bit RGB `PIL.Image` -> float ``[3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def save_image(image: torch.Tensor, path: str | Path) -> None:
    """Write ``[3, H, W]`` in [0, 1] as an 8-bit image (format from the suffix)."""
    from PIL import Image

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"save_image expects an RGB tensor [3, H, W] in [0, 1], got shape {tuple(image.shape)}")
    array = (image.detach().float().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, "RGB").save(path)
