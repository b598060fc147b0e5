"""The generation boundary: what a codec's ``decode`` hands back is checked before it is written or shown.

A plugin codec that returns a tensor where a list is due would otherwise have its first row written as the item (a
``(2,)`` array for a ``[T, 2]`` trajectory), and an empty list would surface as a bare ``IndexError``. `check_decoded`
turns both, and items the media kind's own check refuses, into an error that names the codec class and what it
returned.
"""

from __future__ import annotations

from typing import Any

import torch

from anygpt.media import MediaKind
from anygpt.modalities.codec import Codec


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


def decoded_problem(media: MediaKind, item: Any) -> str | None:
    """Why one decoded item cannot be written as ``media`` (None: it can): the kind's own check (plugins' kinds bring
    theirs), and never NaN or infinite values."""
    why = media.check(item)
    if why is None and isinstance(item, torch.Tensor) and item.is_floating_point() and not torch.isfinite(item).all():
        why = "a tensor with NaN or infinite values"
    return why


def check_decoded(codec: Codec, media: MediaKind, decoded: Any, count: int) -> list[torch.Tensor]:
    """``decoded`` (what ``codec.decode`` returned for ``count`` code items) if it is a list of ``count`` items the
    ``media`` writer can take; else `DecodeContractError` naming the codec class and what it returned."""
    who = f"{type(codec).__module__}.{type(codec).__qualname__}.decode"
    if not isinstance(decoded, (list, tuple)):
        problem = f"it must return a list with one item per code tensor ({count}), not a bare {type(decoded).__name__}"
    elif len(decoded) != count:
        problem = f"it must return one item per code tensor: {count} given, {len(decoded)} returned"
    else:
        problem = next((f"item {i} is {why}, not {media.name} as its modality's media kind takes"
                        for i, item in enumerate(decoded) if (why := decoded_problem(media, item))), None)
    if problem is not None:
        raise DecodeContractError(f"{who} returned {describe(decoded)}: {problem}. See Codec.decode in "
                                  "anygpt/modalities/codec.py for what each media kind takes.")
    return list(decoded)
