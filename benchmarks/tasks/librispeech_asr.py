"""Speech recognition on LibriSpeech test-clean, scored with corpus WER after Whisper's English normalization (the
paper: 8.5, beam search 5 as text).

Baselines (same metric, same run, same redraws), what a model that ignores the audio gets:
- ``empty``: no transcript at all (every word deleted: WER 1.0);
- ``frequent-words``: one constant transcript for every utterance, the most frequent words of the training
  transcripts, as many as minimise WER on those training transcripts.
The interval recomputes the corpus WER (summed errors / summed reference words) on each redraw of the utterances.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anygpt.data.readers import DatasetError, read_librispeech
from anygpt.generation.pipeline import Media
from anygpt.prompts import X2TEXT_INSTRUCTIONS
from benchmarks.metrics import WordErrorRate
from benchmarks.stats import ratio_of
from benchmarks.tasks.base import Prediction, Row, Scored, System, Task, locate, option


def frequent_words_transcript(train_texts: Sequence[str], max_words: int = 12, sample: int = 2000,
                              seed: int = 0) -> tuple[str, float]:
    """The constant transcript a text-only "model" would say: the k most frequent (normalized) training words, k
    chosen to minimise corpus WER on (a sample of) the training transcripts. Returns (transcript, its training WER)."""
    wer = WordErrorRate()
    counts = Counter(w for t in train_texts for w in wer.normalized(t).split())
    top = [w for w, _ in counts.most_common(max_words)]
    texts = list(train_texts)
    if len(texts) > sample:
        texts = random.Random(seed).sample(texts, sample)
    best = ("", 1.0)
    for k in range(1, len(top) + 1):
        guess = " ".join(top[:k])
        errors, words = wer.item_errors([guess] * len(texts), texts)
        score = sum(errors) / sum(words)
        if score < best[1]:
            best = (guess, score)
    return best


@dataclass
class LibrispeechAsr(Task):
    """Transcribe LibriSpeech utterances with the model and score the corpus WER.

    Args:
        split: LibriSpeech subset to evaluate.
        train_split: LibriSpeech subset(s) (comma-separated) whose transcripts give the frequent-words baseline.
        instruction: the transcription instruction.
    """

    name = "librispeech-asr"
    needs = ("speech",)
    output = "text"
    metric = "wer"
    higher_is_better = {"wer": False}

    split: str = option("test-clean")
    train_split: str = option("train-clean-100", cache=False)
    instruction: str = option(X2TEXT_INSTRUCTIONS["speech"][0])

    def speech_root(self, root: Path) -> Path:
        return locate(root, ("librispeech", "LibriSpeech"), f"LibriSpeech {self.split}/ folder", inside=self.split)

    def read_items(self, root: Path) -> list:
        speech_root = self.speech_root(root)
        items = list(read_librispeech(speech_root, self.split, with_alignment=False))[: self.limit]
        if not items:
            raise DatasetError(f"{speech_root / self.split} holds no utterances")
        return items

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [Media("speech", it.path)], "x2text") for it in items]
        return self.text_predictions(keys, prompts, generator)

    def score(self, items, preds) -> Scored | None:
        if not self.is_main:  # text against text: cheap, rank 0 scores everything
            return None
        wer = WordErrorRate()
        refs = [it.text for it in items]
        model = ratio_of(*wer.item_errors([p.text for p in preds], refs))
        baselines, notes = {}, []
        if self.baseline:
            baselines["empty"] = System("no transcript (every word deleted)",
                                        {"wer": ratio_of(*wer.item_errors([""] * len(refs), refs))})
            speech_root = self.speech_root(self.root)
            subsets = [s.strip() for s in self.train_split.split(",") if s.strip()]
            present = [s for s in subsets if (speech_root / s).is_dir()]
            train = [u.text for s in present for u in read_librispeech(speech_root, s, with_alignment=False)]
            if train:
                guess, train_wer = frequent_words_transcript(train, seed=self.seed)
                baselines["frequent-words"] = System(
                    f"the constant transcript {guess!r} for every utterance (the most frequent words of "
                    f"{'+'.join(present)}, as many as minimise WER there: {train_wer:.3f})",
                    {"wer": ratio_of(*wer.item_errors([guess] * len(refs), refs))})
            else:
                notes.append(f"no frequent-words baseline: no training transcripts in {speech_root}/"
                             f"{{{self.train_split}}} (give --train_split)")
        return Scored(model={"wer": model}, baselines=baselines, notes=notes,
                      judge="none (the model transcribes; WER after Whisper English normalization)",
                      failed_as="an empty transcript (every word deleted)")

    def report_rows(self, items, preds, extra: Mapping[int, Mapping[str, Any]], indices) -> list[Row]:
        return [Row().media("speech", items[i].path, "speech").text("transcript", preds[i].text)
                .text("reference", items[i].text) for i in indices]

