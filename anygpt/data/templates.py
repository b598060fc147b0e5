"""Code layouts of spec-dict modalities (``layout: identity`` or ``frame_major:Q``): native codes <-> the 1-D local ids
a prompt spells out. The prompt format itself (training and inference) lives in `anygpt.prompts`.
"""

from __future__ import annotations

import numpy as np
import torch

from anygpt.prompts import Flatten, identity_flatten


def frame_major_flatten(codebook_size: int, num_codebooks: int) -> Flatten:
    """Codes [Q, T] -> t0q0 t0q1 ... t1q0 ..., with codebook q shifted by q * (codebook_size / Q) (Encodec music:
    4 codebooks of 2048 in one 8192-id range)."""
    if codebook_size % num_codebooks:
        raise ValueError(f"codebook_size {codebook_size} is not divisible by num_codebooks {num_codebooks}")
    per_book = codebook_size // num_codebooks

    offsets = np.arange(num_codebooks, dtype=np.int64)[:, None] * per_book

    def flatten(codes: torch.Tensor) -> torch.Tensor:
        # numpy: the training data path flattens every sample's codes, and torch's per-op cost dominates at this size
        array = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes).astype(np.int64)
        if array.ndim != 2 or array.shape[0] != num_codebooks:
            raise ValueError(f"expected codes of shape [{num_codebooks}, T], got {list(array.shape)}")
        if array.size and (array.min() < 0 or array.max() >= per_book):
            raise ValueError(f"codes must lie in [0, {per_book}) per codebook")
        return torch.from_numpy(np.ascontiguousarray((array + offsets).T).reshape(-1))

    return flatten


def layout_flatten(layout: str, codebook_size: int) -> Flatten:
    """A flatten function by name: ``identity`` or ``frame_major:Q`` (Q codebooks, e.g. ``frame_major:4``)."""
    if layout == "identity":
        return identity_flatten
    if layout.startswith("frame_major:"):
        return frame_major_flatten(codebook_size, int(layout.split(":", 1)[1]))
    raise ValueError(f"Unknown code layout {layout!r}; use 'identity' or 'frame_major:Q'")


def frame_major_unflatten(codebook_size: int, num_codebooks: int) -> Flatten:
    """The inverse of `frame_major_flatten`: local ids ``t0q0 t0q1 ...`` -> codes ``[Q, T]``; raises ValueError when
    the ids are not whole frames or an id sits in another codebook's range than its position says."""
    per_book = codebook_size // num_codebooks

    def unflatten(ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids).long().reshape(-1)
        if ids.numel() % num_codebooks:
            raise ValueError(f"{ids.numel()} codes are not whole frames of {num_codebooks}")
        frames = ids.view(-1, num_codebooks)
        books = torch.arange(num_codebooks)
        wrong = (frames // per_book != books).nonzero()
        if len(wrong):
            t, q = (int(x) for x in wrong[0])
            raise ValueError(f"code {int(frames[t, q])} at frame {t}, position {q} is not in codebook {q}'s range "
                             f"[{q * per_book}, {(q + 1) * per_book})")
        return (frames - books * per_book).T.contiguous()

    return unflatten


def layout_unflatten(layout: str, codebook_size: int) -> Flatten:
    """The inverse of `layout_flatten`: 1-D local ids -> native codes."""
    if layout == "identity":
        return lambda ids: torch.as_tensor(ids).long().reshape(-1)
    if layout.startswith("frame_major:"):
        return frame_major_unflatten(codebook_size, int(layout.split(":", 1)[1]))
    raise ValueError(f"Unknown code layout {layout!r}; use 'identity' or 'frame_major:Q'")
