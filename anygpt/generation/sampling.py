"""The generation engine: static KV cache, batched left-padded prompts, sampling/greedy, per-modality presets.

    result = generate(model, [prompt_ids, other_ids], PRESETS["paper/image"].resolve(vocab), generator=g,
                      processors=[ModalityConstraint(vocab, {"image": image.structure})])
    result.new_tokens()  # generated ids per prompt, cut after the stop id

Decoding is prefill + one token per step. The KV cache is allocated once per call (and reused by the next call of the
same shape); nothing else grows per step. `generate` with ``num_beams > 1`` runs `anygpt.generation.beam.beam_search`.
Given a ``torch.Generator`` the output is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from anygpt.generation.processors import (
    LogitsProcessor,
    RepetitionPenalty,
    SuppressUntil,
    Temperature,
    TopK,
    TopP,
    apply_processors,
)
from anygpt.model.llama import LLaMA


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode. Field names and semantics follow HF's ``GenerationConfig``.

    ``stop_tokens`` are token strings resolved through a `UnifiedVocab` by `resolve` into ``stop_ids``.
    """

    max_new_tokens: int = 100
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool = False
    stop_ids: tuple[int, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. SoundStorm steps, for the pipeline

    def resolve(self, vocab: Any) -> GenerationConfig:
        """Add the ids of ``stop_tokens`` (looked up in ``vocab``) to ``stop_ids``."""
        ids = tuple(dict.fromkeys([*self.stop_ids, *(vocab.token_id(t) for t in self.stop_tokens)]))
        return replace(self, stop_ids=ids, stop_tokens=())

    def processors(self, prompt_len: int, padding: Tensor | None = None) -> list[LogitsProcessor]:
        """HF's order: repetition penalty, min-new-tokens; then (sampling only) temperature, top-k, top-p.
        ``padding``: left-padding length per row (ignored by the repetition penalty)."""
        out: list[LogitsProcessor] = []
        if self.repetition_penalty != 1.0:
            out.append(RepetitionPenalty(self.repetition_penalty, padding))
        if self.min_new_tokens > 0 and self.stop_ids:
            out.append(SuppressUntil(self.stop_ids, self.min_new_tokens, prompt_len))
        return out

    def warpers(self) -> list[LogitsProcessor]:
        if not self.do_sample:
            return []
        out: list[LogitsProcessor] = []
        if self.temperature != 1.0:
            out.append(Temperature(self.temperature))
        if self.top_k is not None and self.top_k > 0:
            out.append(TopK(self.top_k))
        if self.top_p is not None and self.top_p < 1.0:
            out.append(TopP(self.top_p))
        return out


# Decoding settings of REFERENCE.md: "paper/<output>" = the paper's evaluation, "release/<output>" = the released
# config/*_generate_config.json (all sample at temperature 1 with min_new_tokens 10).
_EOS = ("<eos>",)
PRESETS: dict[str, GenerationConfig] = {
    "paper/text": GenerationConfig(num_beams=5, max_new_tokens=100, stop_tokens=_EOS),
    "paper/image": GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=200, stop_tokens=_EOS),
    "paper/speech": GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=1500, stop_tokens=_EOS),
    "paper/music": GenerationConfig(do_sample=True, top_p=1.0, repetition_penalty=1.15, max_new_tokens=2000,
                                    stop_tokens=_EOS),
    "release/text": GenerationConfig(do_sample=True, top_p=1.0, max_new_tokens=100, min_new_tokens=10,
                                     stop_tokens=_EOS),
    "release/image": GenerationConfig(do_sample=True, top_p=1.0, max_new_tokens=200, min_new_tokens=10,
                                      stop_tokens=_EOS),
    "release/speech": GenerationConfig(do_sample=True, top_p=1.0, max_new_tokens=1500, min_new_tokens=10,
                                       repetition_penalty=1.05, stop_tokens=_EOS, extra={"soundstorm_steps": 3}),
    "release/music": GenerationConfig(do_sample=True, top_p=1.0, top_k=200, max_new_tokens=2000, min_new_tokens=10,
                                      repetition_penalty=1.15, stop_tokens=_EOS),
}


def preset(name: str, **overrides: Any) -> GenerationConfig:
    """A named preset (``"paper/image"``, ``"release/music"``, ...) with field overrides."""
    if name not in PRESETS:
        raise KeyError(f"Unknown generation preset {name!r}; presets: {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


@dataclass
class GenerationResult:
    """``sequences``: (B, P + n) left-padded prompts followed by the generated ids (``pad_id`` after a row stopped).
    ``lengths``: generated ids per row, the stop id included. ``interrupted``: Ctrl-C (or ``on_step``) ended generation
    early."""

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
        cache = model.blocks[0].attn.kv_cache
        ref = model.lm_head.weight
        if (cache is None or cache.k.shape[0] != R or cache.k.shape[2] != max_len or cache.k.device != ref.device
                or cache.k.dtype != ref.dtype):
            # allocated once per call; a later call of the same shape reuses it (model.clear_kv_cache() frees it)
            model.set_kv_cache(R, max_len, device=ref.device)
        self.slots = torch.arange(max_len, device=device)
        self.key_valid = torch.ones(R, max_len, dtype=torch.bool, device=device)
        self.key_valid[:, :P] = valid
        self.positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        self.next_position = valid.long().sum(1)  # rotary position of the next token of each row
        self.length = 0
        self._step = _decode_step
        if compile:
            self._step = torch.compile(_decode_step, dynamic=False)

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
        for block in self.model.blocks:
            cache = block.attn.kv_cache
            cache.k.copy_(cache.k.index_select(0, rows))
            cache.v.copy_(cache.v.index_select(0, rows))
        self.key_valid = self.key_valid.index_select(0, rows)
        self.next_position = self.next_position.index_select(0, rows)


def _decode_step(model: LLaMA, tokens: Tensor, input_pos: Tensor, position_ids: Tensor, mask: Tensor) -> Tensor:
    return model(tokens, input_pos=input_pos, position_ids=position_ids, mask=mask)[:, -1]


def _context_budget(model: LLaMA, prompt_len: int, max_new_tokens: int) -> int:
    block = model.config.block_size
    if prompt_len >= block:
        raise ValueError(f"The prompt has {prompt_len} tokens but the model's context is {block}; shorten the prompt "
                         "(or drop earlier turns of the conversation).")
    return min(max_new_tokens, block - prompt_len)


# ----------------------------------------------------------------------------------------------------------------------
# Greedy / sampling
# ----------------------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def generate(model: LLaMA, prompts: Sequence[Sequence[int]] | Tensor, config: GenerationConfig,
             processors: Sequence[LogitsProcessor] | Callable[[int], Sequence[LogitsProcessor]] = (),
             generator: torch.Generator | None = None, pad_id: int = 0, compile: bool = False,
             on_step: Callable[[int], bool | None] | None = None) -> GenerationResult:
    """Generate continuations of a batch of prompts.

    Args:
        prompts: token id lists (any lengths; left-padded internally) or a (B, P) tensor without padding.
        config: a `GenerationConfig` (``stop_tokens`` must be resolved already; see `GenerationConfig.resolve`).
        processors: extra logits processors (e.g. `ModalityConstraint`), applied after repetition penalty and before
            temperature/top-k/top-p; or a function of the padded prompt length returning them.
        generator: makes sampling deterministic.
        pad_id: filler for left padding and after a row stopped.
        compile: ``torch.compile`` the one-token decode step (pays off for long generations).
        on_step: called after each step with the number of new tokens so far (a progress counter); returning True
            stops generation there, keeping what was produced (``interrupted``), as Ctrl-C does.
    """
    if config.stop_tokens:
        raise ValueError(f"stop_tokens {config.stop_tokens} are unresolved; call config.resolve(vocab) first")
    device = model.lm_head.weight.device
    ids, valid = left_pad(prompts, pad_id, device)
    B, P = ids.shape
    extra = processors(P) if callable(processors) else list(processors)
    if config.num_beams > 1:
        from anygpt.generation.beam import beam_search

        return beam_search(model, ids, valid, config, extra, pad_id=pad_id, compile=compile, on_step=on_step)
    max_new = _context_budget(model, P, config.max_new_tokens)
    chain = [*config.processors(P, (~valid).sum(1)), *extra, *config.warpers()]
    decoder = CachedDecoder(model, valid, P + max_new, compile=compile)
    tokens = torch.full((B, P + max_new), pad_id, dtype=torch.long, device=device)
    tokens[:, :P] = ids
    stop_ids = torch.tensor(config.stop_ids, dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    interrupted = False
    cur = P
    try:
        logits = decoder.prefill(ids)
        for _ in range(max_new):
            scores = apply_processors(chain, tokens[:, :cur], logits.float())
            if config.do_sample:
                probs = torch.softmax(scores, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
            else:
                nxt = scores.argmax(dim=-1)
            nxt = torch.where(finished, pad_id, nxt)
            tokens[:, cur] = nxt
            lengths += (~finished).long()
            cur += 1
            if stop_ids.numel():
                finished |= torch.isin(nxt, stop_ids)
                if bool(finished.all()):
                    break
            if cur == P + max_new:
                break
            if on_step is not None and on_step(cur - P):
                interrupted = True
                break
            logits = decoder.step(nxt)
    except KeyboardInterrupt:  # keep what was produced so far
        interrupted = True
    return GenerationResult(tokens[:, :cur], P, lengths, interrupted=interrupted)
