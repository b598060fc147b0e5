"""Logits processors: composable callables ``(input_ids (B, L), scores (B, V)) -> scores`` applied before choosing the
next token. Semantics follow transformers' processors of the same name, so settings carry over from HF configs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

LogitsProcessor = Callable[[Tensor, Tensor], Tensor]


def apply_processors(processors: Sequence[LogitsProcessor], input_ids: Tensor, scores: Tensor) -> Tensor:
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores


class RepetitionPenalty:
    """Penalise every id already in the sequence (prompt included): positive scores are divided by ``penalty``,
    negative ones multiplied (CTRL / HF semantics).

    ``padding`` (B,): number of left-padding positions per row, which are not "in the sequence" (as in HF, which
    reads them from the attention mask).
    """

    def __init__(self, penalty: float, padding: Tensor | None = None) -> None:
        if penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
        self.penalty = penalty
        self.padding = padding

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        V = scores.size(-1)
        if self.padding is not None and bool(self.padding.any()):
            positions = torch.arange(input_ids.size(1), device=input_ids.device)
            padding = self.padding.to(input_ids.device)[:, None]
            input_ids = input_ids.masked_fill(positions[None, :] < padding, V)  # sent to a scratch column
        scores = torch.nn.functional.pad(scores, (0, 1))
        seen = torch.gather(scores, 1, input_ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, input_ids, seen)[:, :V]


class SuppressUntil:
    """Forbid ``ids`` (the stop ids) until ``min_new_tokens`` tokens were generated after a prompt of ``prompt_len``."""

    def __init__(self, ids: Sequence[int], min_new_tokens: int, prompt_len: int) -> None:
        self.ids = torch.tensor(list(ids), dtype=torch.long)
        self.min_length = prompt_len + min_new_tokens

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if input_ids.size(1) < self.min_length and self.ids.numel():
            scores = scores.index_fill(1, self.ids.to(scores.device), float("-inf"))
        return scores


class Temperature:
    def __init__(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use do_sample=False for greedy), got {temperature}")
        self.temperature = temperature

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        return scores / self.temperature


class TopK:
    """Keep the ``k`` highest scores (ties with the k-th kept too)."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        self.k = k

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        k = min(self.k, scores.size(-1))
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        return scores.masked_fill(scores < kth, float("-inf"))


class TopP:
    """Nucleus filtering: keep the smallest set of ids whose probability reaches ``p`` (at least one id)."""

    def __init__(self, p: float) -> None:
        if not 0.0 < p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {p}")
        self.p = p

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.p >= 1.0:
            return scores
        ascending, order = torch.sort(scores, dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1.0 - self.p
        drop[..., -1] = False  # the most likely id always survives
        return scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
