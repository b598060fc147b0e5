import jiwer
import numpy as np
import pytest

from benchmarks.metrics import WordErrorRate
from benchmarks.metrics.seed_tts import seed_tts_normalize, utterance_wers


def test_normalization_keeps_apostrophes_and_lowercases():
    assert seed_tts_normalize("Please call Stella. Ask her to bring these things!") == \
        "please call stella ask her to bring these things"
    assert seed_tts_normalize("Don't (ever) say \"No\" - twice, Mr. Smith;") == "don't ever say no twice mr smith"
    assert seed_tts_normalize("a  b") == "a b"  # double spaces made single
    assert seed_tts_normalize("10% of $5.00") == "10 of 500"  # no number expansion, unlike Whisper's normalizer


def test_mean_of_utterance_wers_differs_from_corpus_wer():
    refs = ["Please call Stella.", "Ask her to bring these things with her from the store, today."]
    hyps = ["please call stella now", "ask her to bring these things with her from the store today"]
    wers = utterance_wers(hyps, refs)
    assert wers == pytest.approx([jiwer.wer("please call stella", "please call stella now"), 0.0])
    assert np.mean(wers) == pytest.approx(1 / 6)
    corpus = WordErrorRate()
    corpus.update(hyps, refs)
    assert float(corpus.compute()) == pytest.approx(1 / 15)  # one insertion over 15 words: not the protocol's number
    assert utterance_wers([""], ["two words"]) == [1.0]
    with pytest.raises(ValueError, match="empty after seed-tts-eval"):
        utterance_wers(["x"], ["?!"])
