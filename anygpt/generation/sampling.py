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

from anygpt.generation.beam import beam_search
from anygpt.generation.decoder import CachedDecoder, GenerationResult, compile_by_default, context_budget, left_pad
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


# Decoding settings of REFERENCE.md: "paper/<output>" = the paper's evaluation; "release/<...>" = the release's five
# config/*.json files, field for field: generate_config.json is what its chat CLI decodes text with ("chat-text": beam
# sampling, 5 beams), text_generate_config.json what its base CLI does ("text"); image/speech/music_generate_config.json
# serve both. SoundStorm runs generate_config.json's vc_steps (3) in both CLIs (speech_generate_config.json's 4 is read
# by neither). The release builds these configs without an eos id, so its decoding never stops before
# max_new_tokens and the reply is cut afterwards; we stop at <eos> (after min_new_tokens).
_EOS = ("<eos>",)
PRESETS: dict[str, GenerationConfig] = {
    "paper/text": GenerationConfig(num_beams=5, max_new_tokens=100, stop_tokens=_EOS),
    "paper/image": GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=200, stop_tokens=_EOS),
    "paper/speech": GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=1500, stop_tokens=_EOS),
    "paper/music": GenerationConfig(do_sample=True, top_p=1.0, repetition_penalty=1.15, max_new_tokens=2000,
                                    stop_tokens=_EOS),
    "release/chat-text": GenerationConfig(do_sample=True, num_beams=5, temperature=1.0, top_p=1.0,
                                          max_new_tokens=500, min_new_tokens=10, repetition_penalty=1.0,
                                          stop_tokens=_EOS, extra={"soundstorm_steps": 3}),
    "release/text": GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=100,
                                     min_new_tokens=10, stop_tokens=_EOS),
    "release/image": GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=200,
                                      min_new_tokens=10, stop_tokens=_EOS),
    "release/speech": GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=1500,
                                       min_new_tokens=10, repetition_penalty=1.05, stop_tokens=_EOS,
                                       extra={"soundstorm_steps": 3}),
    "release/music": GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=200, max_new_tokens=2000,
                                      min_new_tokens=10, repetition_penalty=1.15, stop_tokens=_EOS),
}


def preset(name: str, **overrides: Any) -> GenerationConfig:
    """A named preset (``"paper/image"``, ``"release/music"``, ...) with field overrides."""
    if name not in PRESETS:
        raise KeyError(f"Unknown generation preset {name!r}; presets: {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


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
                probs = torch.softmax(scores, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
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
