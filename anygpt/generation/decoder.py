"""The decoding state both sampling and beam search run on: left-padded batches and a static-KV-cache decoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from anygpt.model.llama.model import LLaMA


@dataclass
class GenerationResult:
    """``sequences``: (B, P + n) left-padded prompts followed by the generated ids (``pad_id`` after a row stopped).
    ``lengths``: generated ids per row, the stop id included. ``interrupted``: Ctrl-C (or an ``on_step`` callback)
    ended generation early."""

    sequences: Tensor
    prompt_len: int
    lengths: Tensor
    scores: Tensor | None = None  # beam search: the final (length-normalised) score of each returned sequence
    interrupted: bool = False

    def new_tokens(self) -> list[list[int]]:
        return [row[self.prompt_len: self.prompt_len + int(n)].tolist()
                for row, n in zip(self.sequences, self.lengths, strict=True)]


# ----------------------------------------------------------------------------------------------------------------------
# Batching and the cached decoder
# ----------------------------------------------------------------------------------------------------------------------
def left_pad(prompts: Sequence[Sequence[int]] | Tensor, pad_id: int, device: torch.device | None = None
             ) -> tuple[Tensor, Tensor]:
    """Prompts of different lengths -> (ids (B, P), valid (B, P)) with padding on the left."""
    if isinstance(prompts, Tensor):
        ids = prompts if prompts.dim() == 2 else prompts[None]
        return ids.to(device=device, dtype=torch.long), torch.ones_like(ids, dtype=torch.bool, device=device)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("Every prompt needs at least one token")
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    valid = torch.zeros((len(prompts), P), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
        valid[i, P - len(p):] = True
    return ids.to(device), valid.to(device)


class CachedDecoder:
    """Runs ``model`` over a left-padded batch with a static KV cache of ``max_len`` slots.

    Slot ``s`` of the cache holds sequence index ``s`` of every row; padding slots are masked out of attention, and
    rotary positions count only real tokens, so a padded row computes exactly what it computes alone.
    """

    def __init__(self, model: LLaMA, valid: Tensor, max_len: int, compile: bool = False) -> None:
        self.model = model
        R, P = valid.shape
        device = valid.device
        if compile:
            max_len = compiled_cache_len(max_len)
        # allocated once per call; a later call of the same shape reuses it (model.clear_kv_cache() frees it)
        model.ensure_kv_cache(R, max_len)
        self.slots = torch.arange(max_len, device=device)
        self.key_valid = torch.ones(R, max_len, dtype=torch.bool, device=device)
        self.key_valid[:, :P] = valid
        self.positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        self.next_position = valid.long().sum(1)  # rotary position of the next token of each row
        self.length = 0
        self._step = torch.compile(_decode_step, dynamic=False) if compile else _decode_step

    def prefill(self, ids: Tensor) -> Tensor:
        """Logits (R, V) after the prompt."""
        P = ids.size(1)
        causal = self.slots[None, :] <= torch.arange(P, device=ids.device)[:, None]  # (P, S)
        own = self.slots[None, :] == torch.arange(P, device=ids.device)[:, None]  # padding rows attend to themselves
        mask = (causal[None] & self.key_valid[:, None, :]) | own[None]
        logits = self.model(ids, input_pos=torch.arange(P, device=ids.device), position_ids=self.positions,
                            mask=mask[:, None], logits_to_keep=1)
        self.length = P
        return logits[:, -1]

    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per row (R,), get the next logits (R, V)."""
        input_pos = torch.tensor([self.length], device=tokens.device)
        mask = (self.key_valid & (self.slots <= self.length))[:, None, None, :]
        logits = self._step(self.model, tokens[:, None], input_pos, self.next_position[:, None], mask)
        self.next_position = self.next_position + 1
        self.length += 1
        return logits

    def reorder(self, rows: Tensor) -> None:
        """Beam search: row ``i`` continues from row ``rows[i]``."""
        self.model.reorder_kv_cache(rows)
        self.key_valid = self.key_valid.index_select(0, rows)
        self.next_position = self.next_position.index_select(0, rows)


def _decode_step(model: LLaMA, tokens: Tensor, input_pos: Tensor, position_ids: Tensor, mask: Tensor) -> Tensor:
    return model(tokens, input_pos=input_pos, position_ids=position_ids, mask=mask)[:, -1]


def compiled_cache_len(max_len: int, smallest: int = 256) -> int:
    """KV cache slots for a compiled decode step: the next power of two (at least ``smallest``). The step is compiled
    for static shapes (the cache is a module buffer, so its length is part of the graph); rounding makes calls with
    different prompt lengths reuse a few graphs instead of recompiling for each length. Extra slots are masked out."""
    return max(smallest, 1 << (max_len - 1).bit_length())


def compile_by_default(model: LLaMA) -> bool:
    """Whether `generate` compiles the decode step when not told: on CUDA, where the one-token step is bound by kernel
    launches; not on CPU, where compiling paid for itself only after ~20k decode steps (more than a chat session or a
    demo benchmark decodes; docs/performance.md). benchmarks/perf/gpu_suite.py measures the break-even on a GPU."""
    return model.lm_head.weight.device.type == "cuda"


def context_budget(model: LLaMA, prompt_len: int, max_new_tokens: int) -> int:
    block = model.config.block_size
    if prompt_len >= block:
        raise ValueError(f"The prompt has {prompt_len} tokens but the model's context is {block}; shorten the prompt "
                         "(or drop earlier turns of the conversation).")
    return min(max_new_tokens, block - prompt_len)
