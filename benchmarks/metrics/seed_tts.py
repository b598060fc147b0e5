"""The seed-tts-eval protocol's English WER (BytedanceSpeech/seed-tts-eval, used to compare zero-shot TTS papers):
Whisper-large-v3 transcribes the generated speech (16 kHz, language English, task transcribe); both the transcript and
the target text lose every punctuation character but the apostrophe, double spaces become single, both are
lowercased; WER is computed per utterance (jiwer) and the reported WER is the mean of the per-utterance WERs (not the
corpus ratio of summed errors to summed words that `WordErrorRate` gives). Speaker similarity is the cosine between
speaker-verification embeddings of the generated speech and the prompt.

Only ASCII punctuation is stripped here (the protocol also strips Chinese punctuation; its English texts hold none).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

PROTOCOLS = ("anygpt", "seed-tts-eval")
STRIPPED = "".join(c for c in string.punctuation if c != "'")
NORMALIZATION = ("seed-tts-eval: punctuation but the apostrophe removed, double spaces made single, lowercased; "
                 "WER per utterance (jiwer), averaged over utterances")


def seed_tts_normalize(text: str) -> str:
    """The protocol's English text normalization (see the module docstring)."""
    return text.translate(str.maketrans("", "", STRIPPED)).replace("  ", " ").lower()


def utterance_wers(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per utterance: jiwer's WER of the normalized hypothesis against the normalized reference."""
    import jiwer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} transcripts but {len(references)} references")
    out = []
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        truth = seed_tts_normalize(ref)
        if not truth.split():
            raise ValueError(f"reference {i} is empty after seed-tts-eval normalization: {ref!r}")
        out.append(float(jiwer.process_words(truth, seed_tts_normalize(hyp)).wer))
    return out
