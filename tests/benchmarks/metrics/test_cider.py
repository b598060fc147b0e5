import random

import numpy as np
import pytest
import torch
from pycocoevalcap.cider.cider import Cider

from benchmarks.metrics import CIDEr, cider_d
from benchmarks.metrics.ptb_tokenizer import JavaPTBTokenizer, python_ptb_tokenize
from benchmarks.perf.ptb_tokenizer_gap import adversarial_groups

WORDS = "a the an man woman dog cat on in with of riding sitting red blue big small table street car bus two".split()


def random_caption(rng: random.Random, max_len: int = 14) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_len)))


def reference_cider(hyps, refs):
    return Cider().compute_score({i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})


@pytest.mark.slow
def test_cider_d_equals_pycocoevalcap_on_many_random_sets():
    rng = random.Random(0)
    worst = 0.0
    for _ in range(300):
        n = rng.randint(1, 25)
        hyps = [random_caption(rng) for _ in range(n)]  # includes empty hypotheses
        refs = [[random_caption(rng) or "a" for _ in range(rng.randint(1, 6))] for _ in range(n)]
        ref_score, ref_scores = reference_cider(hyps, refs)
        score, scores = cider_d(hyps, refs)
        worst = max(worst, abs(ref_score - score), float(np.abs(np.asarray(ref_scores) - scores).max()))
    assert worst < 1e-9


def test_cider_d_single_image_and_nonzero_scores():
    # one image: idf = log(1) - log(1) = 0 everywhere, as in pycocoevalcap
    assert cider_d(["a dog"], [["a dog"]])[0] == reference_cider(["a dog"], [["a dog"]])[0] == 0.0
    hyps = ["a dog on a red car", "two cats sitting"]
    refs = [["a dog on a car", "a dog riding a red car"], ["two cats are sitting", "cats on a table"]]
    score, _ = cider_d(hyps, refs)
    assert score > 0.5
    assert score == pytest.approx(reference_cider(hyps, refs)[0], abs=1e-12)


def test_metric_accumulates_over_updates_and_forward():
    rng = random.Random(1)
    hyps = [random_caption(rng) for _ in range(20)]
    refs = [[random_caption(rng) or "a" for _ in range(5)] for _ in range(20)]
    metric = CIDEr(tokenizer="none")
    assert metric(hyps[:7], refs[:7]) is None  # forward only accumulates: CIDEr is corpus-level
    metric.update(hyps[7:], refs[7:])
    assert metric.compute().item() == pytest.approx(reference_cider(hyps, refs)[0], abs=1e-12)
    metric.reset()
    with pytest.raises(ValueError, match="no captions"):
        metric.compute()


def test_bad_input_is_a_clear_error():
    metric = CIDEr(tokenizer="none")
    with pytest.raises(ValueError, match="2 predictions but 1 reference"):
        metric.update(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="non-empty list"):
        metric.update(["a"], [[]])
    with pytest.raises(ValueError, match="non-empty list"):
        metric.update(["a"], ["a string, not a list"])
    with pytest.raises(ValueError, match="tokenizer"):
        CIDEr(tokenizer="spacy")
    with pytest.raises(ValueError, match="1 hypotheses for 2"):
        cider_d(["a"], [["a"], ["b"]])
    dropping = CIDEr(tokenizer=lambda captions: captions[:-1])  # a tokenizer that loses a caption
    dropping.update(["a cat"], [["a cat", "the cat"]])
    with pytest.raises(ValueError, match="returned 2 captions for 3"):
        dropping.compute()


# Captions with the cases that matter: case, punctuation, possessives, contractions, brackets, quotes, numbers.
TRICKY = [
    "A man riding a wave on top of a surfboard.",
    'Two dogs\' toys are on the floor (left) and a "big" cat.',
    "It's a black-and-white photo of the U.S. flag, isn't it?",
    "A woman cannot hold 3.5 kg of $5 apples & 1,000 oranges at 10:30 -- wow...",
    "The man/woman is near a 3-d TV; e.g. Mr. Smith's car at St. Louis.",
    "people are gonna eat a hot dog w/ mustard * [big] {small}",
    "I'm sure they'll say they'd've done it. 50% off! Don't.",
    "A bowl of banana's, sprinkels, chocolate chips, and marshmellows.",
    "Bikers on bikes in front of a lot of traffic\n",
    "a small air plane getting ready to take off .",
    "",
]
EXPECTED_JAVA = [
    "a man riding a wave on top of a surfboard",
    "two dogs toys are on the floor -lrb- left -rrb- and a big cat",
    "it 's a black-and-white photo of the u.s. flag is n't it",
    "a woman can not hold 3.5 kg of $ 5 apples & 1,000 oranges at 10:30 wow",
    "the man/woman is near a 3-d tv e.g. mr. smith 's car at st. louis",
    "people are gon na eat a hot dog w / mustard * -lsb- big -rsb- -lcb- small -rcb-",
    "i 'm sure they 'll say they 'd 've done it 50 % off do n't",
    "a bowl of banana 's sprinkels chocolate chips and marshmellows",
    "bikers on bikes in front of a lot of traffic",
    "a small air plane getting ready to take off",
    "",
]


ADVERSARIAL = [c for group in adversarial_groups(images=200) for c in group]


@pytest.fixture(scope="module")
def java_all():
    return JavaPTBTokenizer()(TRICKY + ADVERSARIAL)  # one JVM start for the module


@pytest.fixture(scope="module")
def java_tokens(java_all):
    return java_all[: len(TRICKY)]


def test_java_tokenizer_matches_coco_protocol(java_tokens):
    # pycocoevalcap's known quirk is kept: lowercased -lrb-/-rrb- survive its (upper-case) punctuation filter
    assert java_tokens == EXPECTED_JAVA


def test_python_tokenizer_matches_java_on_tricky_captions(java_tokens):
    assert [python_ptb_tokenize(c) for c in TRICKY] == java_tokens


def test_python_tokenizer_gap_on_adversarial_token_soup(java_all):
    java = java_all[len(TRICKY) :]
    same = sum(python_ptb_tokenize(c) == j for c, j in zip(ADVERSARIAL, java, strict=True)) / len(ADVERSARIAL)
    assert same >= 0.99  # measured 99.7% (benchmarks/perf/ptb_tokenizer_gap.py --adversarial)


def test_metric_with_java_tokenizer_equals_pycocoevalcap_on_tokenized_text(java_tokens):
    hyps = TRICKY[:5] + [""]
    refs = [[TRICKY[(i + k) % len(TRICKY)] or "x" for k in range(1, 4)] for i in range(len(hyps))]
    metric = CIDEr(tokenizer="java")
    metric.update(hyps, refs)
    tok = dict(zip(TRICKY + ["x"], java_tokens + ["x"], strict=True))
    expected, _ = reference_cider([tok[h] for h in hyps], [[tok[r] for r in rs] for rs in refs])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)
    assert metric.compute().dtype == torch.float64


def test_cider_on_a_redraw_equals_pycocoevalcap_on_the_redrawn_set():
    """The bootstrap statistic: document frequencies and log(#images) of the redrawn set, duplicates as entries."""
    from benchmarks.metrics.cider import CiderD
    from benchmarks.stats import redraws

    rng = random.Random(3)
    n = 12
    hyps = [random_caption(rng) for _ in range(n)]
    refs = [[random_caption(rng) or "a" for _ in range(rng.randint(1, 5))] for _ in range(n)]
    stat = CiderD(hyps, refs)
    assert stat(np.ones((1, n)))[0] == pytest.approx(reference_cider(hyps, refs)[0], abs=1e-12)
    weights = next(redraws(n, resamples=8, seed=1))
    values = stat(weights)
    for w, value in zip(weights, values, strict=True):
        drawn = [i for i in range(n) for _ in range(int(w[i]))]
        expected, _ = reference_cider([hyps[i] for i in drawn], [refs[i] for i in drawn])
        assert value == pytest.approx(expected, abs=1e-12)
    assert len(set(np.round(values, 9))) > 1  # redraws differ
