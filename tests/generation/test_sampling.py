import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

from anygpt.generation.options import GenerationConfig, preset
from anygpt.generation.processors import RepetitionPenalty, TopK, TopP
from anygpt.generation.sampling import generate
from anygpt.model.llama.hf_adapter import load_hf
from tests.model.helpers import tiny_hf_llama

PROMPTS = [[5, 17, 33, 8, 61, 12, 40], [9, 70], [44, 3, 27, 81]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    hf = tiny_hf_llama(n_kv_head=2, vocab_size=96)
    hf.save_pretrained(path)
    hf.generation_config.eos_token_id = None  # stop ids come from each test
    return hf, load_hf(path).eval()


def hf_generate(hf, prompts, **kwargs):
    """HF generate on a left-padded batch; returns the new tokens per row, cut after eos (pad id 0)."""
    P = max(map(len, prompts))
    ids = torch.zeros(len(prompts), P, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p)
        mask[i, P - len(p):] = 1
    out = hf.generate(input_ids=ids, attention_mask=mask, pad_token_id=0, **kwargs)[:, P:]
    eos = kwargs.get("eos_token_id")
    rows = []
    for row in out.tolist():
        if eos is not None and eos in row:
            row = row[: row.index(eos) + 1]
        rows.append(row)
    return rows


def test_greedy_equals_hf_generate_on_a_ragged_batch(pair):
    hf, ours = pair
    plain = hf_generate(hf, PROMPTS, max_new_tokens=16, do_sample=False, eos_token_id=None)
    eos = plain[0][6]  # a token row 0 really emits, so stopping is exercised
    expected = hf_generate(hf, PROMPTS, max_new_tokens=16, do_sample=False, eos_token_id=eos)
    got = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=16, stop_ids=(eos,)))
    assert got.new_tokens() == expected
    assert len(expected[0]) == plain[0].index(eos) + 1 < 16  # row 0 stopped on the stop id
    # each row alone gives the same as in the batch
    for prompt, row in zip(PROMPTS, expected, strict=True):
        assert generate(ours, [prompt], GenerationConfig(max_new_tokens=16, stop_ids=(eos,))).new_tokens()[0] == row


def test_repetition_penalty_generation_equals_hf(pair):
    hf, ours = pair
    expected = hf_generate(hf, PROMPTS, max_new_tokens=12, do_sample=False, repetition_penalty=1.3,
                           eos_token_id=None)
    got = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=12, repetition_penalty=1.3))
    assert got.new_tokens() == expected


def test_sampling_with_top_k_1_equals_greedy_and_is_deterministic(pair):
    _, ours = pair
    greedy = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10)).new_tokens()
    top1 = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10, do_sample=True, top_k=1, temperature=0.7),
                    generator=torch.Generator().manual_seed(0)).new_tokens()
    assert top1 == greedy
    cfg = GenerationConfig(max_new_tokens=10, do_sample=True, top_p=0.9, temperature=1.3)
    a = generate(ours, PROMPTS, cfg, generator=torch.Generator().manual_seed(1)).new_tokens()
    b = generate(ours, PROMPTS, cfg, generator=torch.Generator().manual_seed(1)).new_tokens()
    c = generate(ours, PROMPTS, cfg, generator=torch.Generator().manual_seed(2)).new_tokens()
    assert a == b and a != c


@pytest.mark.parametrize("num_beams", [2, 4])
def test_beam_search_equals_hf(pair, num_beams):
    hf, ours = pair
    plain = hf_generate(hf, PROMPTS, max_new_tokens=12, do_sample=False, eos_token_id=None)
    early = 0
    for eos in (plain[0][3], plain[2][5], plain[1][2]):
        kwargs = dict(max_new_tokens=12, do_sample=False, num_beams=num_beams, length_penalty=1.0,
                      early_stopping=False, eos_token_id=eos)
        expected = hf_generate(hf, PROMPTS, **kwargs)
        got = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=12, num_beams=num_beams, stop_ids=(eos,)))
        assert got.new_tokens() == expected, eos
        early += sum(row[-1] == eos and len(row) < 12 for row in expected)
    assert early >= 2  # some best hypotheses finished on the stop id before the length limit


def test_processors_equal_hf_on_the_same_logits():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 50, generator=gen) * 3
    ids = torch.randint(0, 50, (4, 12), generator=gen)
    assert torch.equal(RepetitionPenalty(1.15)(ids, scores), RepetitionPenaltyLogitsProcessor(1.15)(ids, scores))
    padding = torch.tensor([0, 3, 0, 5])  # left padding is not part of the sequence
    expected = RepetitionPenaltyLogitsProcessor(1.3, prompt_ignore_length=padding)(ids, scores.clone())
    assert torch.equal(RepetitionPenalty(1.3, padding)(ids, scores), expected)
    for p in (0.3, 0.7, 0.95):
        assert torch.equal(TopP(p)(ids, scores), TopPLogitsWarper(p)(ids, scores.clone()))
    for k in (1, 5, 49):
        assert torch.equal(TopK(k)(ids, scores), TopKLogitsWarper(k)(ids, scores.clone()))


def test_presets_and_bad_input(pair):
    _, ours = pair
    music = preset("release/music")
    assert (music.top_k, music.repetition_penalty, music.max_new_tokens) == (200, 1.15, 2000)
    assert preset("paper/text").num_beams == 5 and preset("paper/image").top_p == 0.7
    with pytest.raises(KeyError, match="presets"):
        preset("nope")
    with pytest.raises(ValueError, match="unresolved"):
        generate(ours, PROMPTS, preset("release/text"))
    with pytest.raises(ValueError, match="context"):
        generate(ours, [[1] * 200], GenerationConfig(max_new_tokens=4))


def test_min_new_tokens_suppresses_stop(pair):
    _, ours = pair
    greedy = generate(ours, PROMPTS[:1], GenerationConfig(max_new_tokens=8)).new_tokens()[0]
    stop = greedy[1]
    out = generate(ours, PROMPTS[:1], GenerationConfig(max_new_tokens=8, stop_ids=(stop,), min_new_tokens=4))
    assert stop not in out.new_tokens()[0][:4]


def test_static_cache_is_allocated_once_and_reused(pair):
    _, ours = pair
    config = GenerationConfig(max_new_tokens=10)
    ours.clear_kv_cache()
    first = generate(ours, PROMPTS, config).new_tokens()
    cache = ours.blocks[0].attn.kv_cache.k
    assert cache.shape[0] == len(PROMPTS) and cache.shape[2] == 7 + 10
    again = generate(ours, PROMPTS, config).new_tokens()
    assert ours.blocks[0].attn.kv_cache.k is cache and again == first  # same buffer, stale contents are harmless


def test_interrupt_keeps_what_was_produced(pair):
    _, ours = pair
    calls = []

    def interrupt_at_step_4(input_ids, scores):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return scores

    result = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10), processors=[interrupt_at_step_4])
    full = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10)).new_tokens()
    assert result.interrupted and result.new_tokens() == [row[:3] for row in full]


def test_on_step_counts_tokens_and_can_stop_generation(pair):
    """The progress hook of `anygpt serve`: a count per step, and a true return stops like Ctrl-C does."""
    _, ours = pair
    full = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10)).new_tokens()
    seen = []
    result = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10), on_step=lambda n: seen.append(n))
    assert not result.interrupted and result.new_tokens() == full
    assert seen == list(range(1, 10))  # every step but the last, which ends generation anyway
    stopped = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=10), on_step=lambda n: n >= 3)
    assert stopped.interrupted and stopped.new_tokens() == [row[:3] for row in full]


def test_on_step_stops_beam_search_with_the_best_running_beam(pair):
    _, ours = pair
    config = GenerationConfig(max_new_tokens=8, num_beams=3)
    seen = []
    whole = generate(ours, PROMPTS, config, on_step=lambda n: seen.append(n))
    assert not whole.interrupted and seen == list(range(1, len(seen) + 1)) and seen
    stopped = generate(ours, PROMPTS, config, on_step=lambda n: n >= 2)
    assert stopped.interrupted and stopped.lengths.tolist() == [2, 2, 2]
    # no stop ids: the best running beam after 2 steps is the best 2-token hypothesis, what a 2-token search returns
    two = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=2, num_beams=3)).new_tokens()
    assert stopped.new_tokens() == two


def test_long_prompt_budget_is_clamped_to_the_context(pair):
    _, ours = pair
    block = ours.config.block_size
    out = generate(ours, [[5] * (block - 3)], GenerationConfig(max_new_tokens=50))
    assert out.sequences.shape[1] == block and out.lengths.tolist() == [3]


def test_sampling_equals_hf_under_the_same_seed(pair):
    """HF samples with torch.multinomial on the global RNG; with generator=None ours draws the same numbers, so equal
    processed distributions give equal samples (this checks the processor order and the top-k/top-p/penalty maths)."""
    hf, ours = pair
    settings = dict(temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.2)
    torch.manual_seed(123)
    expected = hf_generate(hf, PROMPTS, max_new_tokens=15, do_sample=True, eos_token_id=None, **settings)
    torch.manual_seed(123)
    got = generate(ours, PROMPTS, GenerationConfig(max_new_tokens=15, do_sample=True, **settings)).new_tokens()
    assert got == expected


def test_compiled_cache_length_is_a_power_of_two_and_extra_slots_change_nothing(pair):
    from anygpt.generation.decoder import CachedDecoder, compile_by_default, compiled_cache_len, left_pad

    assert [compiled_cache_len(n) for n in (1, 17, 256, 257, 1500, 4096)] == [256, 256, 256, 512, 2048, 4096]
    _, ours = pair
    assert not compile_by_default(ours)  # CPU: compiling costs more than it saves (docs/performance.md)
    ids, valid = left_pad(PROMPTS, 0)
    logits = []
    for slots in (ids.size(1) + 6, compiled_cache_len(ids.size(1) + 6)):  # exact, and rounded as when compiled
        decoder = CachedDecoder(ours, valid, slots)
        with torch.inference_mode():
            steps = [decoder.prefill(ids)]
            for _ in range(5):
                steps.append(decoder.step(steps[-1].argmax(-1)))
        logits.append(torch.stack(steps))
    torch.testing.assert_close(logits[1], logits[0])
