"""Constrained decoding: every modality span the model emits is valid by construction.

Outside a span, code ids and end markers of every modality are forbidden (text, special tokens and start markers
remain). Once a start marker is emitted, only that modality's codes allowed at the current position of the span
(`SpanStructure`) can be chosen, plus its end marker when the span may end; a complete span (fixed length reached,
or ``max_length``) may only be closed. So SEED image spans have exactly 32 codes and music spans whole 4-codebook
frames, each position in its codebook's range (the silent-music failure of the original, OpenMOSS/AnyGPT#38, needs
out-of-cycle codes).

The span state of each row is read from the ids themselves (the last start/end marker), so the processor is stateless:
it works unchanged when beam search reorders rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from anygpt.modalities.spec import SpanStructure
from anygpt.vocab import UnifiedVocab


class ModalityConstraint:
    """A logits processor enforcing span structure.

    Args:
        vocab: the unified vocabulary (ids of codes and markers).
        structures: modality name -> `SpanStructure` (a `Modality`'s ``.structure``); modalities not given may hold
            any number (>= 1) of their codes.
        force_modality: make the first generated token this modality's start marker (the release's chat template
            appends it to the prompt instead; both work).
        prompt_len: length of the (padded) prompt, needed with ``force_modality``.
    """

    def __init__(self, vocab: UnifiedVocab, structures: Mapping[str, SpanStructure] | None = None,
                 force_modality: str | None = None, prompt_len: int = 0) -> None:
        structures = dict(structures or {})
        unknown = set(structures) - set(vocab.modalities)
        if unknown or (force_modality is not None and force_modality not in vocab.modalities):
            raise KeyError(f"Unknown modality {sorted(unknown) or force_modality!r}; the vocabulary has "
                           f"{list(vocab.modalities)}")
        self.vocab = vocab
        self.ranges = list(vocab.modalities.values())
        self.structures = [structures.get(r.name, SpanStructure()) for r in self.ranges]
        self.start_ids = torch.tensor([r.start_id for r in self.ranges], dtype=torch.long)
        self.end_ids = torch.tensor([r.end_id for r in self.ranges], dtype=torch.long)
        # True: forbidden outside spans (every code id and every end marker)
        self.code_mask = torch.zeros(len(vocab), dtype=torch.bool)
        for r in self.ranges:
            self.code_mask[r.codes.start: r.codes.stop] = True
            self.code_mask[r.end_id] = True
        self.force = vocab.modalities[force_modality].start_id if force_modality is not None else None
        self.prompt_len = prompt_len

    def span_state(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Per row: index of the open span's modality (-1 when outside any span) and the number of codes in it."""
        L = input_ids.size(1)
        positions = torch.arange(1, L + 1, device=input_ids.device)  # 1-based so that 0 means "never"
        is_start = torch.isin(input_ids, self.start_ids.to(input_ids.device))
        is_end = torch.isin(input_ids, self.end_ids.to(input_ids.device))
        last_start = (positions * is_start).max(dim=1).values
        last_end = (positions * is_end).max(dim=1).values
        open_span = last_start > last_end
        marker = input_ids.gather(1, (last_start - 1).clamp(min=0)[:, None])[:, 0]
        modality = (marker[:, None] == self.start_ids.to(input_ids.device)).int().argmax(dim=1)
        modality = torch.where(open_span, modality, torch.full_like(modality, -1))
        length = torch.where(open_span, L - last_start, torch.zeros_like(last_start))
        return modality, length

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if scores.size(-1) < len(self.code_mask):
            raise ValueError(f"The model has {scores.size(-1)} output ids but the vocabulary {len(self.code_mask)}")
        modality, length = self.span_state(input_ids)
        neg_inf = float("-inf")
        code_mask = self.code_mask.to(scores.device)
        if scores.size(-1) > code_mask.numel():  # padded output rows beyond the vocabulary are never valid
            code_mask = torch.cat([code_mask, code_mask.new_ones(scores.size(-1) - code_mask.numel())])
        out = scores.masked_fill(code_mask, neg_inf)
        for row, (m, n) in enumerate(zip(modality.tolist(), length.tolist(), strict=True)):
            if m < 0:
                if self.force is not None and input_ids.size(1) == self.prompt_len:
                    keep = scores[row, self.force].clone()
                    out[row] = neg_inf
                    out[row, self.force] = keep
                continue
            rng, structure = self.ranges[m], self.structures[m]
            out[row] = neg_inf
            if structure.must_end(n):
                out[row, rng.end_id] = scores[row, rng.end_id]
                continue
            lo, hi = structure.allowed_codes(n, rng.spec.codebook_size)
            codes = slice(rng.first_id + lo, rng.first_id + hi)
            out[row, codes] = scores[row, codes]
            if structure.can_end(n):
                out[row, rng.end_id] = scores[row, rng.end_id]
        return out
