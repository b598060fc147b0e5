"""The generation boundary: what a codec's ``decode`` hands back is checked before it is written or shown.

A plugin codec that returns a tensor where a list is due would otherwise have its first row written as the item (a
``(2,)`` array for a ``[T, 2]`` trajectory), and an empty list would surface as a bare ``IndexError``. `check_decoded`
turns both, and items of the wrong shape for their media kind, into an error that names the codec class and what it
returned.
"""

from __future__ import annotations

from typing import Any

import torch

from anygpt.media import MediaKind
from anygpt.modalities.base import Codec


class DecodeContractError(ValueError):
    """A codec's ``decode`` returned something its modality's media kind cannot write."""


def describe(value: Any) -> str:
    """A short account of a value, for error messages (``a tensor [16, 2] float32``, ``a list of 0 items``)."""
    if isinstance(value, torch.Tensor):
        return f"a tensor {list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, (list, tuple)):
        head = f": {describe(value[0])}" + (", ..." if len(value) > 1 else "") if value else ""
        return f"a {type(value).__name__} of {len(value)} item(s){head}"
    return f"a {type(value).__name__}"


# media kind -> (allowed ranks, what the kind's writer takes)
_SHAPES: dict[str, tuple[tuple[int, ...], str]] = {
    "image": ((3,), "[3, H, W] in [0, 1]"),
    "audio": ((1, 2), "a mono waveform [T] or [1, T]"),
    "array": ((1, 2, 3, 4, 5, 6), "an array of at least one dimension"),
}


def decoded_problem(media: MediaKind, item: Any) -> str | None:
    """What is wrong with one decoded item for ``media`` (None: its writer can take it)."""
    if not isinstance(item, torch.Tensor):
        return "an item is not a tensor"
    if item.dtype.is_complex or item.dtype == torch.bool:
        return f"an item has dtype {item.dtype}"
    if item.numel() == 0:
        return "an item is empty"
    if item.dtype.is_floating_point and not bool(torch.isfinite(item).all()):
        return "an item holds NaN or infinite values"
    ranks, expected = _SHAPES.get(media.name, (tuple(range(1, 9)), "a tensor of at least one dimension"))
    shape = list(item.shape)
    if item.dim() not in ranks or (media.name == "image" and shape[0] != 3) or (
            media.name == "audio" and item.dim() == 2 and shape[0] != 1):
        return f"an item has shape {shape}, but {media.name} items are {expected}"
    return None


def check_decoded(codec: Codec, media: MediaKind, decoded: Any, count: int) -> list[torch.Tensor]:
    """``decoded`` (what ``codec.decode`` returned for ``count`` code items) if it is a list of ``count`` items the
    ``media`` writer can take; else `DecodeContractError` naming the codec class and what it returned."""
    who = f"{type(codec).__module__}.{type(codec).__qualname__}.decode"
    if not isinstance(decoded, (list, tuple)):
        problem = f"it must return a list with one item per code tensor ({count}), not a bare {type(decoded).__name__}"
    elif len(decoded) != count:
        problem = f"it must return one item per code tensor: {count} given, {len(decoded)} returned"
    else:
        problem = next((p for p in (decoded_problem(media, item) for item in decoded) if p), None)
    if problem is not None:
        raise DecodeContractError(f"{who} returned {describe(decoded)}: {problem}. See Codec.decode in "
                                  "anygpt/modalities/base.py for what each media kind takes.")
    return list(decoded)
