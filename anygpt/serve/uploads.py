"""What a visitor may upload to ``anygpt serve`` and how each file is checked before anything is decoded.

Shared by the page (`anygpt.serve.app`) and the OpenAI-compatible routes (`anygpt.serve.api`): every refusal is a
`ServeError` whose message names the file as the visitor called it and says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anygpt.media import MEDIA_KINDS, MediaError, audio_info, read_image

MB = 2**20


class ServeError(ValueError):
    """A request the server answers with a message (a bad upload, an unknown option, a prompt too long), not a crash.

    ``status`` is the HTTP status the OpenAI-compatible routes answer it with; ``param`` the request field at fault.
    """

    status = 400

    def __init__(self, message: str, param: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.param = param
        if status is not None:
            self.status = status


class TooLarge(ServeError):
    """An upload over the size limit (HTTP 413)."""

    status = 413


class TurnStopped(ServeError):
    """The visitor stopped a turn before it started (it was still waiting for the model)."""

    status = 499


class Busy(ServeError):
    """Too many requests already wait for the model."""

    status = 429


@dataclass(frozen=True)
class UploadLimits:
    """What one request may upload; checked from file headers before anything is decoded."""

    max_bytes: int = 20 * MB
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 120.0
    max_files: int = 8


@dataclass(frozen=True)
class Upload:
    """A file a visitor sent; ``name`` is what they called it (the server's copy has another name)."""

    path: str | Path
    name: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).name


def file_kind(path: str | Path) -> str | None:
    """The media kind (`anygpt.media.MEDIA_KINDS`) a file's suffix says it is, None for none."""
    return next((kind.name for kind in MEDIA_KINDS.values() if kind.accepts(path)), None)


def size_text(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB / 10 else f"{n / 1024:.1f} KB"


def duration_text(seconds: float) -> str:
    """A duration as people write it, never rounded past what a limit message needs: 130 s -> ``2 min 10 s``."""
    if seconds < 90:
        return f"{seconds:.1f} s"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes) + [f"{secs} s"] * bool(secs)
    return " ".join(parts)


def safe_name(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "file")[-80:]


def check_upload(upload: Upload, limits: UploadLimits, kinds: Sequence[str], accepted: str) -> str:
    """The media kind of an upload (one of ``kinds``), after checking its size and header against ``limits``;
    ``accepted`` says in words what may be uploaded (for the refusal)."""
    name, path = upload.display_name, Path(upload.path)
    if not path.is_file():
        raise ServeError(f"{name}: the upload did not arrive (no file on the server); send it again")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise TooLarge(f"{name} is {size_text(size)}; uploads are limited to {size_text(limits.max_bytes)}")
    if size == 0:
        raise ServeError(f"{name} is empty (0 bytes)")
    kind = file_kind(name)
    if kind not in kinds:
        raise ServeError(f"{name}: this model reads {accepted}; "
                         f"{Path(name).suffix or 'a file without a suffix'} is none of them")
    try:
        if kind == "image":
            read_image(path, max_pixels=limits.max_image_pixels)  # decoded whole: a truncated file shows here
        elif kind == "audio":
            seconds, _, _ = audio_info(path)  # from the header
            if seconds > limits.max_audio_seconds:
                raise ServeError(f"{name} lasts {duration_text(seconds)}; audio is limited to "
                                 f"{duration_text(limits.max_audio_seconds)}: cut it first")
    except MediaError as err:  # the server's copy has another name: say the visitor's
        raise ServeError(str(err).replace(str(path), name)) from err
    return kind
