import random

import jiwer
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from benchmarks.metrics import WordErrorRate

VOCAB = ["hello", "World", "Mr.", "Smith's", "colour", "it's", "2nd", "$5", "don't", "okay", "the", "cat", "sat", "on"]


def sentence(rng: random.Random, lo: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(lo, 10))) + rng.choice(["", ".", "!", "?"])


def test_equals_jiwer_on_whisper_normalized_strings():
    rng = random.Random(0)
    norm = EnglishTextNormalizer()
    refs = [sentence(rng, 1) for _ in range(200)]
    hyps = [sentence(rng, 0) for _ in range(200)]  # includes empty predictions (all deletions)
    metric = WordErrorRate()
    for i in range(0, 200, 37):  # uneven batches
        metric.update(hyps[i : i + 37], refs[i : i + 37])
    expected = jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)


def test_normalization_applies_to_both_sides():
    metric = WordErrorRate()
    metric.update(["Mister Smith's colour is OK."], ["mr smith's color is ok"])
    assert metric.compute().item() == 0.0
    raw = WordErrorRate(normalize=False)
    raw.update(["Mister Smith's colour is OK."], ["mr smith's color is ok"])
    assert raw.compute().item() > 0.5


def test_bad_input():
    metric = WordErrorRate()
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        metric.update(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty after normalization"):
        metric.update(["a"], ["uh, um!"])  # fillers and punctuation vanish
    with pytest.raises(ValueError, match="no references"):
        metric.compute()
    metric.update([""], ["one two"])  # an empty prediction counts, it does not crash
    assert metric.compute().item() == 1.0


def test_item_errors_sum_to_the_corpus_counts():
    rng = random.Random(1)
    refs = [sentence(rng, 1) for _ in range(100)]
    hyps = [sentence(rng, 0) for _ in range(100)]
    metric = WordErrorRate()
    errors, words = metric.item_errors(hyps, refs)
    norm = EnglishTextNormalizer()
    out = jiwer.process_words([norm(r) for r in refs], [norm(h) for h in hyps])
    assert sum(errors) == out.substitutions + out.deletions + out.insertions
    assert sum(words) == out.substitutions + out.deletions + out.hits
    for i in (0, 17, 99):  # each item alone is its own jiwer WER
        assert errors[i] / words[i] == pytest.approx(jiwer.wer(norm(refs[i]), norm(hyps[i])), abs=1e-12)
