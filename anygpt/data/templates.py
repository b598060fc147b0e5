"""Code layouts by name (``identity``, ``frame_major:Q``) over the codec's one implementation: native codes <-> the 1-D
local ids a prompt spells out. The prompt format itself (training and inference) lives in `anygpt.prompts`."""

from __future__ import annotations

from functools import partial

import torch

from anygpt.modalities.codec import frame_major_flatten as codec_frame_major_flatten
from anygpt.modalities.codec import frame_major_unflatten as codec_frame_major_unflatten
from anygpt.prompts import Flatten, identity_flatten


def frame_major_flatten(codebook_size: int, num_codebooks: int) -> Flatten:
    """Codes [Q, T] -> frame-major ids, by the codec's one implementation (`anygpt.modalities.codec`)."""
    if codebook_size % num_codebooks:
        raise ValueError(f"codebook_size {codebook_size} is not divisible by num_codebooks {num_codebooks}")
    return partial(codec_frame_major_flatten, codebooks=num_codebooks, bins=codebook_size // num_codebooks)


def layout_flatten(layout: str, codebook_size: int) -> Flatten:
    """A flatten function by name: ``identity`` or ``frame_major:Q`` (Q codebooks, e.g. ``frame_major:4``)."""
    if layout == "identity":
        return identity_flatten
    if layout.startswith("frame_major:"):
        return frame_major_flatten(codebook_size, int(layout.split(":", 1)[1]))
    raise ValueError(f"Unknown code layout {layout!r}; use 'identity' or 'frame_major:Q'")


def frame_major_unflatten(codebook_size: int, num_codebooks: int) -> Flatten:
    """The inverse of `frame_major_flatten`, checking whole frames and codebook ranges (`anygpt.modalities.codec`)."""
    return partial(codec_frame_major_unflatten, codebooks=num_codebooks, bins=codebook_size // num_codebooks,
                   strict=True)


def layout_unflatten(layout: str, codebook_size: int) -> Flatten:
    """The inverse of `layout_flatten`: 1-D local ids -> native codes."""
    if layout == "identity":
        return lambda ids: torch.as_tensor(ids).long().reshape(-1)
    if layout.startswith("frame_major:"):
        return frame_major_unflatten(codebook_size, int(layout.split(":", 1)[1]))
    raise ValueError(f"Unknown code layout {layout!r}; use 'identity' or 'frame_major:Q'")
