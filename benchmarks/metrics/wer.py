"""Word error rate after Whisper's English normalization, as jiwer computes it over a corpus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


class WordErrorRate(Metric):
    """Corpus WER = (substitutions + deletions + insertions) summed over utterances / reference words summed.

    Both sides go through `whisper_normalizer.english.EnglishTextNormalizer` (a copy of openai-whisper's) unless
    `normalize=False`; the result equals `jiwer.wer(normalized_refs, normalized_hyps)`. States are two counters summed
    across ranks. An empty prediction counts as all deletions; a reference empty after normalization is an error.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, normalize: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.normalizer = None
        if normalize:
            from whisper_normalizer.english import EnglishTextNormalizer

            self.normalizer = EnglishTextNormalizer()
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("words", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def normalized(self, text: str) -> str:
        return self.normalizer(text) if self.normalizer is not None else text

    def item_errors(self, preds: str | Sequence[str], target: str | Sequence[str]) -> tuple[list[int], list[int]]:
        """Per utterance: (substitutions + deletions + insertions, reference words), after normalization. Their sums
        over any set of utterances give that set's corpus WER (what the bootstrap recomputes per redraw)."""
        import jiwer

        preds = [preds] if isinstance(preds, str) else list(preds)
        target = [target] if isinstance(target, str) else list(target)
        if len(preds) != len(target):
            raise ValueError(f"WordErrorRate.update: {len(preds)} predictions but {len(target)} references")
        if not preds:
            return [], []
        hyps, refs = [], []
        for i, (p, r) in enumerate(zip(preds, target, strict=True)):
            if not isinstance(p, str) or not isinstance(r, str):
                raise ValueError(f"WordErrorRate.update: item {i} is not a pair of strings: {p!r}, {r!r}")
            ref = self.normalized(r)
            if not ref.split():
                raise ValueError(f"WordErrorRate.update: reference {i} is empty after normalization: {r!r}")
            refs.append(ref)
            hyps.append(self.normalized(p))
        out = jiwer.process_words(refs, hyps)
        errors, words = [], []
        for chunks in out.alignments:
            e = w = 0
            for c in chunks:
                ref_span, hyp_span = c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx
                w += ref_span
                e += hyp_span if c.type == "insert" else ref_span if c.type != "equal" else 0
            errors.append(e)
            words.append(w)
        return errors, words

    def update(self, preds: str | Sequence[str], target: str | Sequence[str]) -> None:
        errors, words = self.item_errors(preds, target)
        self.errors += sum(errors)
        self.words += sum(words)

    def compute(self) -> Tensor:
        if self.words == 0:
            raise ValueError("WordErrorRate.compute: no references were added (call update first)")
        return self.errors.double() / self.words.double()
