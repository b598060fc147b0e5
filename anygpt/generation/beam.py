"""Beam search for text, scoring exactly like transformers' ``generate(num_beams=...)`` (v4.50+ vectorised version),
and beam sampling (``do_sample=True``: what the release's chat config asks for, ``num_beams=5`` with sampling).

Per step, with running beams scored by their summed log-probabilities: take the top ``2 * num_beams`` continuations
over all beams (beam sampling: draw them without replacement from the softmax of those summed scores, after the
warpers, then order them by score); those ending in a stop id (or at the length limit) and ranked among the first
``num_beams`` become finished hypotheses scored ``sum_logprobs / generated_len ** length_penalty``; the best
``num_beams`` unfinished ones keep running. Search ends when no running beam can beat the worst finished one (HF's
``early_stopping=False`` heuristic), or every continuation stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from anygpt.generation.decoder import CachedDecoder, GenerationResult, context_budget
from anygpt.generation.options import GenerationConfig
from anygpt.generation.processors import LogitsProcessor, apply_processors
from anygpt.model.llama.model import LLaMA

_NEG = -1.0e9


def _gather(t: Tensor, index: Tensor) -> Tensor:
    """t (B, K, ...) gathered along dim 1 by index (B, K')."""
    shape = index.shape + t.shape[2:]
    return t.gather(1, index.view(*index.shape, *([1] * (t.dim() - 2))).expand(shape))


@torch.inference_mode()
def beam_search(model: LLaMA, ids: Tensor, valid: Tensor, config: GenerationConfig,
                processors: Sequence[LogitsProcessor] = (), pad_id: int = 0, compile: bool = False,
                generator: torch.Generator | None = None,
                on_step: Callable[[int], bool | None] | None = None) -> GenerationResult:
    """Beam search (or beam sampling, ``config.do_sample``) over a left-padded batch ``ids``/``valid`` (B, P);
    returns the best hypothesis per row. ``generator`` makes beam sampling deterministic.

    ``on_step`` (see `generate`) returning True stops the search and returns the best running beam, ``interrupted``.
    """
    device = ids.device
    B, P = ids.shape
    nb = config.num_beams
    max_new = context_budget(model, P, config.max_new_tokens)
    max_len = P + max_new
    keep = max(2, 1 + len(config.stop_ids)) * nb
    top_rank = torch.arange(keep, device=device) < nb
    stop_ids = torch.tensor(config.stop_ids, dtype=torch.long, device=device)
    chain = [*config.processors(P, (~valid).sum(1).repeat_interleave(nb)), *processors, *config.warpers()]
    lp = config.length_penalty

    running = torch.full((B, nb, max_len), pad_id, dtype=torch.long, device=device)
    running[:, :, :P] = ids[:, None]
    running_scores = torch.zeros(B, nb, device=device)
    running_scores[:, 1:] = _NEG
    finished = running.clone()
    finished_scores = torch.full((B, nb), _NEG, device=device)
    finished_len = torch.zeros(B, nb, dtype=torch.long, device=device)
    is_finished = torch.zeros(B, nb, dtype=torch.bool, device=device)
    improvable = torch.ones(B, 1, dtype=torch.bool, device=device)

    decoder = CachedDecoder(model, valid.repeat_interleave(nb, 0), max_len, compile=compile)
    logits = decoder.prefill(ids.repeat_interleave(nb, 0))
    cur = P
    batch_offset = torch.arange(B, device=device)[:, None] * nb
    while True:
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        log_probs = apply_processors(chain, running.view(B * nb, max_len)[:, :cur], log_probs)
        V = log_probs.size(-1)
        total = (log_probs.view(B, nb, V) + running_scores[:, :, None]).view(B, nb * V)
        if config.do_sample:
            top_index = torch.multinomial(torch.softmax(total, dim=-1), keep, generator=generator)
            top_scores, order = total.gather(1, top_index).sort(dim=-1, descending=True)
            top_index = top_index.gather(1, order)
        else:
            top_scores, top_index = torch.topk(total, keep, dim=1)
        source = top_index // V
        token = top_index % V
        candidates = _gather(running, source)
        candidates[:, :, cur] = token
        hits = (cur + 1 >= max_len) | torch.isin(token, stop_ids)
        # beams that keep running
        run_scores = top_scores + hits.float() * _NEG
        chosen = torch.topk(run_scores, nb, dim=1).indices
        running = _gather(candidates, chosen)
        running_scores = _gather(run_scores, chosen)
        chosen_source = _gather(source, chosen)
        # hypotheses that finish now
        just_finished = hits & top_rank[None, :]
        fin = top_scores / ((cur + 1 - P) ** lp)
        if config.early_stopping:
            fin = fin + (is_finished.all(dim=1, keepdim=True)).float() * _NEG
        fin = fin + (~improvable).float() * _NEG + (~just_finished).float() * _NEG
        merged_scores = torch.cat([finished_scores, fin], dim=1)
        best = torch.topk(merged_scores, nb, dim=1).indices
        finished = _gather(torch.cat([finished, candidates], dim=1), best)
        finished_scores = _gather(merged_scores, best)
        new_len = torch.full_like(fin, cur + 1 - P, dtype=torch.long)
        finished_len = _gather(torch.cat([finished_len, new_len], dim=1), best)
        is_finished = _gather(torch.cat([is_finished, just_finished], dim=1), best)

        cur += 1
        best_running = running_scores[:, :1] / ((cur - P) ** lp)
        worst_finished = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, _NEG)
        improvable = improvable & (best_running > worst_finished).any(dim=1, keepdim=True)
        all_done = bool(is_finished.all()) and config.early_stopping
        if not bool(improvable.any()) or all_done or bool(hits.all()):
            break
        if on_step is not None and on_step(cur - P):
            lengths = torch.full((B,), cur - P, dtype=torch.long, device=device)
            return GenerationResult(running[:, 0, :cur].clone(), P, lengths, interrupted=True)
        decoder.reorder((chosen_source + batch_offset).view(-1))
        logits = decoder.step(running[:, :, cur - 1].reshape(-1))

    lengths = finished_len[:, 0]
    out_len = P + int(lengths.max())
    sequences = finished[:, 0, :out_len].clone()
    for row, n in enumerate(lengths.tolist()):
        sequences[row, P + n:] = pad_id
    return GenerationResult(sequences, P, lengths, scores=finished_scores[:, 0])
