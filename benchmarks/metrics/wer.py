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

    def update(self, preds: str | Sequence[str], target: str | Sequence[str]) -> None:
        import jiwer

        preds = [preds] if isinstance(preds, str) else list(preds)
        target = [target] if isinstance(target, str) else list(target)
        if len(preds) != len(target):
            raise ValueError(f"WordErrorRate.update: {len(preds)} predictions but {len(target)} references")
        if not preds:
            return
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
        self.errors += out.substitutions + out.deletions + out.insertions
        self.words += out.substitutions + out.deletions + out.hits

    def compute(self) -> Tensor:
        if self.words == 0:
            raise ValueError("WordErrorRate.compute: no references were added (call update first)")
        return self.errors.double() / self.words.double()
