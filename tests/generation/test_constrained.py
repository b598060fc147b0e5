import pytest
import torch

from anygpt.generation.constrained import ModalityConstraint
from anygpt.generation.options import GenerationConfig
from anygpt.generation.sampling import generate
from anygpt.modalities.spec import ModalitySpec, SpanStructure
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.text_tokenizer import TextTokenizer
from anygpt.vocab import UnifiedVocab

STRUCTURES = {
    "image": SpanStructure(fixed_length=6),  # SEED-like: exactly 6 codes
    "speech": SpanStructure(max_length=10),  # open-ended, capped
    "music": SpanStructure(cycle=((0, 4), (4, 8), (8, 12), (12, 16)), max_length=24),  # 4 codebooks of 4
}


class ByteText(TextTokenizer):
    vocab_size, bos_id, eos_id = 24, None, None

    def encode(self, text):
        return [ord(c) % 24 for c in text]

    def decode(self, ids):
        return "".join(chr(97 + i) for i in ids)

    def save(self, directory):
        pass


@pytest.fixture(scope="module")
def setup():
    vocab = UnifiedVocab(ByteText(), [ModalitySpec("image", 16, ("<soim>", "<eoim>"), "<i{}>"),
                                      ModalitySpec("speech", 8, ("<sosp>", "<eosp>"), "<s{}>"),
                                      ModalitySpec("music", 16, ("<somu>", "<eomu>"), "<m{}>")])
    torch.manual_seed(0)
    model = LLaMA(Config(vocab_size=len(vocab), block_size=128, n_layer=1, n_head=2, n_embd=16,
                         intermediate_size=32, init_std=0.5)).eval()
    return vocab, model


class MarkerBias:
    """Make a random model open and close spans often, so that every rule of the constraint is exercised."""

    def __init__(self, vocab):
        self.starts = [r.start_id for r in vocab.modalities.values()]
        self.ends = [r.end_id for r in vocab.modalities.values()]

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.starts] += 6.0
        scores[:, self.ends] += 3.0
        return scores


def check_spans(ids, vocab, prompt_len, max_new):
    """Walk a sequence and assert every modality span obeys its structure. Returns closed spans per modality."""
    ranges = list(vocab.modalities.values())
    by_start = {r.start_id: r for r in ranges}
    codes = {i: r for r in ranges for i in r.codes}
    ends = {r.end_id for r in ranges}
    closed = {r.name: 0 for r in ranges}
    span, n = None, 0
    for tok in ids:
        if span is None:
            assert tok not in codes and tok not in ends, f"code/end marker {tok} outside a span"
            if tok in by_start:
                span, n = by_start[tok], 0
            continue
        structure = STRUCTURES[span.name]
        if tok == span.end_id:
            assert structure.can_end(n), f"{span.name} span closed after {n} codes"
            closed[span.name] += 1
            span = None
            continue
        assert tok in span.codes, f"{tok} inside a {span.name} span"
        lo, hi = structure.allowed_codes(n, span.spec.codebook_size)
        code = tok - span.first_id
        assert lo <= code < hi, f"{span.name} position {n}: code {code} not in [{lo},{hi})"
        assert not structure.must_end(n), f"{span.name} span longer than allowed"
        n += 1
    if span is not None:  # only the token budget may leave a span open
        assert len(ids) - prompt_len == max_new
    return closed


def test_every_sampled_span_is_valid(setup):
    vocab, model = setup
    prompts = [vocab.encode(t) for t in ["hello", "draw a cat", "x", "play music please"]] * 6
    stop = vocab.token_id("<eos>")
    config = GenerationConfig(max_new_tokens=60, do_sample=True, temperature=1.5, stop_ids=(stop,))
    result = generate(model, prompts, config, generator=torch.Generator().manual_seed(0),
                      processors=[MarkerBias(vocab), ModalityConstraint(vocab, STRUCTURES)])
    totals = {name: 0 for name in vocab.modalities}
    P = result.prompt_len
    for row, n in zip(result.sequences.tolist(), result.lengths.tolist(), strict=True):
        for name, count in check_spans(row[: P + n], vocab, P, 60).items():
            totals[name] += count
    assert all(count >= 5 for count in totals.values()), totals  # every structure was exercised


def test_unconstrained_sampling_breaks_the_rules(setup):
    """The check above can fail: without the constraint the same sampling produces invalid spans."""
    vocab, model = setup
    prompts = [vocab.encode("hello")] * 8
    result = generate(model, prompts, GenerationConfig(max_new_tokens=60, do_sample=True, temperature=1.5),
                      generator=torch.Generator().manual_seed(0), processors=[MarkerBias(vocab)])
    failures = 0
    for row in result.sequences.tolist():
        try:
            check_spans(row, vocab, result.prompt_len, 60)
        except AssertionError:
            failures += 1
    assert failures > 0


@pytest.mark.parametrize("modality", ["image", "music"])
def test_forced_output_modality_greedy_and_beam(setup, modality):
    vocab, model = setup
    prompts = [vocab.encode("a prompt"), vocab.encode("another one")]
    P = max(map(len, prompts))
    start = vocab.modalities[modality].start_id
    for config in (GenerationConfig(max_new_tokens=40), GenerationConfig(max_new_tokens=40, num_beams=3)):
        constraint = ModalityConstraint(vocab, STRUCTURES, force_modality=modality, prompt_len=P)
        result = generate(model, prompts, config, processors=[constraint])
        for row, n in zip(result.sequences.tolist(), result.lengths.tolist(), strict=True):
            assert row[P] == start
            check_spans(row[: P + n], vocab, P, 40)
    # forcing through the prompt (the release's chat template appends the start marker) works the same way
    prompts = [p + [start] for p in prompts]
    result = generate(model, prompts, GenerationConfig(max_new_tokens=40),
                      processors=[ModalityConstraint(vocab, STRUCTURES)])
    for row in result.sequences.tolist():
        check_spans(row, vocab, result.prompt_len, 40)


def test_image_span_ends_exactly_on_time(setup):
    vocab, model = setup
    image = vocab.modalities["image"]
    prompts = [vocab.encode("img") + [image.start_id]] * 4
    result = generate(model, prompts, GenerationConfig(max_new_tokens=12, do_sample=True),
                      generator=torch.Generator().manual_seed(3), processors=[ModalityConstraint(vocab, STRUCTURES)])
    for row in result.new_tokens():
        assert all(t in image.codes for t in row[:6]) and row[6] == image.end_id


def test_unknown_modality_is_rejected(setup):
    vocab, _ = setup
    with pytest.raises(KeyError, match="video"):
        ModalityConstraint(vocab, {"video": SpanStructure()})
