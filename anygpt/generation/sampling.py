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

import torch
from torch import Tensor

from anygpt.generation.beam import beam_search
from anygpt.generation.decoder import CachedDecoder, GenerationResult, compile_by_default, context_budget, left_pad
from anygpt.generation.options import GenerationConfig
from anygpt.generation.processors import LogitsProcessor, apply_processors
from anygpt.model.llama.model import LLaMA


# ----------------------------------------------------------------------------------------------------------------------
# Greedy / sampling
# ----------------------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def generate(model: LLaMA, prompts: Sequence[Sequence[int]] | Tensor, config: GenerationConfig,
             processors: Sequence[LogitsProcessor] | Callable[[int], Sequence[LogitsProcessor]] = (),
             generator: torch.Generator | None = None, pad_id: int = 0, compile: bool | None = None,
             on_step: Callable[[int], bool | None] | None = None,
             on_token: Callable[[Tensor], None] | None = None) -> GenerationResult:
    """Generate continuations of a batch of prompts.

    Args:
        prompts: token id lists (any lengths; left-padded internally) or a (B, P) tensor without padding.
        config: a `GenerationConfig` (``stop_tokens`` must be resolved already; see `GenerationConfig.resolve`).
        processors: extra logits processors (e.g. `ModalityConstraint`), applied after repetition penalty and before
            temperature/top-k/top-p; or a function of the padded prompt length returning them.
        generator: makes sampling deterministic.
        pad_id: filler for left padding and after a row stopped.
        compile: ``torch.compile`` the one-token decode step; None: `compile_by_default` (on CUDA, not on CPU).
        on_step: called after each step with the number of new tokens so far (a progress counter); returning True
            stops generation there, keeping what was produced (``interrupted``), as Ctrl-C does.
        on_token: called with each step's new ids (B,) as they are sampled (streaming; not called by beam search,
            whose tokens are only known at the end).
    """
    if config.stop_tokens:
        raise ValueError(f"stop_tokens {config.stop_tokens} are unresolved; call config.resolve(vocab) first")
    device = model.lm_head.weight.device
    if compile is None:
        compile = compile_by_default(model)
    ids, valid = left_pad(prompts, pad_id, device)
    B, P = ids.shape
    extra = processors(P) if callable(processors) else list(processors)
    if config.num_beams > 1:
        return beam_search(model, ids, valid, config, extra, pad_id=pad_id, compile=compile, generator=generator,
                           on_step=on_step)
    max_new = context_budget(model, P, config.max_new_tokens)
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
                nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)[:, 0]
            else:
                nxt = scores.argmax(dim=-1)
            nxt = torch.where(finished, pad_id, nxt)
            tokens[:, cur] = nxt
            if on_token is not None:
                on_token(nxt)
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
