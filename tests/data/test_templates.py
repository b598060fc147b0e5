import random

import numpy as np
import pytest
import torch

from anygpt.data.shards import Sample
from anygpt.data.templates import frame_major_flatten, layout_flatten
from anygpt.data.tiny import TINY_MODALITIES, make_tokenizer
from anygpt.prompts import TEXT2X_INSTRUCTIONS, X2TEXT_INSTRUCTIONS, TemplateRenderer, pair_text
from anygpt.text_tokenizer import load_text_tokenizer
from anygpt.vocab import UnifiedVocab


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    from anygpt.modalities.registry import configured_modality

    text = load_text_tokenizer(make_tokenizer(tmp_path_factory.mktemp("tok")))
    return UnifiedVocab(text, [configured_modality(m)[0] for m in TINY_MODALITIES])


def pair(modality="image", codes=None, **meta):
    codes = np.array([1, 2, 3], dtype=np.int16) if codes is None else codes
    return Sample("k1", {"text": "a red circle", "media": {f"{modality}0": modality}, **meta},
                  {f"{modality}0": codes}, shard="s.tar")


class FixedRandom(random.Random):
    """random.Random whose draws are scripted, to pick a direction and an instruction."""

    def __init__(self, value: float, index: int) -> None:
        super().__init__(0)
        self.value, self.index = value, index

    def random(self) -> float:
        return self.value

    def choice(self, seq):
        return seq[self.index]


@pytest.mark.parametrize("direction", ["x2text", "text2x"])
def test_pretraining_templates_exact(vocab, direction):
    renderer = TemplateRenderer(vocab, add_bos_eos=False)
    sample = pair()
    rendered = renderer.render_pair(sample, FixedRandom(0.0 if direction == "x2text" else 0.99, 1), x2text_prob=0.5)
    codes = "<soim><👀1><👀2><👀3><eoim>"
    if direction == "x2text":
        instruction = X2TEXT_INSTRUCTIONS["image"][1]
        expected = f"[Human]: {instruction} {codes}<eoh> [MMGPT]: a red circle<eos>"
    else:
        instruction = TEXT2X_INSTRUCTIONS["image"][1]
        expected = f"[Human]: {instruction} This is input: a red circle<eoh> [MMGPT]: {codes}<eos>"
    text = pair_text(direction, instruction, "a red circle", "<media:image0>")
    assert renderer.render_text(text, sample) == expected
    assert rendered.ids == vocab.encode(expected)
    assert all(rendered.mask)  # pretraining: loss on every token


@pytest.mark.parametrize("direction", ["x2text", "text2x"])
def test_pairs_can_train_on_the_answer_only(vocab, direction):
    renderer = TemplateRenderer(vocab, add_bos_eos=True)
    rng = FixedRandom(0.0 if direction == "x2text" else 0.99, 1)
    rendered = renderer.render_pair(pair(), rng, x2text_prob=0.5, train_on="assistant")
    codes = "<soim><👀1><👀2><👀3><eoim>"
    if direction == "x2text":
        prompt, answer = f"[Human]: {X2TEXT_INSTRUCTIONS['image'][1]} {codes}<eoh> [MMGPT]:", " a red circle<eos>"
    else:
        prompt = f"[Human]: {TEXT2X_INSTRUCTIONS['image'][1]} This is input: a red circle<eoh> [MMGPT]:"
        answer = f" {codes}<eos>"
    text = vocab.text
    assert rendered.ids == [text.bos_id, *vocab.encode(prompt), *vocab.encode(answer), text.eos_id]
    trained = [i for i, m in zip(rendered.ids, rendered.mask, strict=True) if m]
    assert trained == [*vocab.encode(answer), text.eos_id]  # the prompt (and BOS) carry no loss
    with pytest.raises(ValueError, match="train_on must be"):
        renderer.render_pair(pair(), rng, train_on="prompt")


def test_bos_eos_wrap_and_caption_only_direction(vocab):
    renderer = TemplateRenderer(vocab, add_bos_eos=True)
    rng = random.Random(0)
    for _ in range(20):
        rendered = renderer.render_pair(pair(), rng, x2text_prob=1.0)
        assert rendered.ids[0] == vocab.text.bos_id and rendered.ids[-1] == vocab.text.eos_id
        assert rendered.mask[0] is False and all(rendered.mask[1:])
        text = vocab.decode_text(rendered.ids)
        assert "This is input" not in text and text.index("<soim>") < text.index("[MMGPT]")


def test_direction_is_drawn_with_probability(vocab):
    renderer = TemplateRenderer(vocab, add_bos_eos=False)
    rng = random.Random(1)
    human = vocab.token_id("[MMGPT]")
    soim = vocab.modalities["image"].start_id
    x2text = sum(r.ids.index(soim) < r.ids.index(human)
                 for r in (renderer.render_pair(pair(), rng) for _ in range(400)))
    assert 160 < x2text < 240


def test_conversation_masks_only_assistant_turns(vocab):
    renderer = TemplateRenderer(vocab, add_bos_eos=False, system_prompt="You are AnyGPT.")
    sample = Sample("c", {"media": {"speech0": "speech"}, "conversation": [
        {"role": "user", "message": "Transcribe <media:speech0>"}, {"role": "assistant", "message": "hello"},
        {"role": "user", "message": "Again?"}, {"role": "assistant", "message": "bye"}]},
        {"speech0": np.array([4, 5], dtype=np.int16)})
    rendered = renderer.render_conversation(sample, train_on="assistant")
    full = ("You are AnyGPT.\n[Human]: Transcribe <sosp><🗣️4><🗣️5><eosp><eoh>\n[MMGPT]: hello<eos>\n"
            "[Human]: Again?<eoh>\n[MMGPT]: bye<eos>")
    assert vocab.decode_text(rendered.ids) == full
    trained = vocab.decode_text([i for i, m in zip(rendered.ids, rendered.mask, strict=True) if m])
    assert trained == " hello<eos> bye<eos>"
    assert all(renderer.render_conversation(sample, train_on="all").mask)
    with pytest.raises(ValueError, match="train_on"):
        renderer.render_conversation(sample, train_on="users")


def test_music_frame_major_flatten_matches_release_layout():
    flatten = frame_major_flatten(8192, 4)
    codes = torch.tensor([[0, 10], [1, 11], [2, 12], [3, 13]])  # [Q=4, T=2]
    assert flatten(codes).tolist() == [0, 2049, 4098, 6147, 10, 2059, 4108, 6157]
    with pytest.raises(ValueError, match="shape"):
        flatten(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="Unknown code layout"):
        layout_flatten("zigzag", 10)


def test_renderer_uses_modality_flatten(vocab):
    renderer = TemplateRenderer(vocab, flatten={"music": layout_flatten("frame_major:2", 64)}, add_bos_eos=False)
    sample = pair("music", codes=np.array([[1, 2], [3, 4]], dtype=np.int16))
    ids = renderer.media_ids(sample, "music0")
    first = vocab.modalities["music"].first_id
    assert [i - first for i in ids[1:-1]] == [1, 35, 2, 36]
    with pytest.raises(KeyError, match="names no media item"):
        renderer.media_ids(sample, "music7")


def test_the_training_config_decides_the_direction(vocab):
    """A shard never overrides the training config's ``x2text_prob`` (older shards stored one per sample)."""
    renderer = TemplateRenderer(vocab, add_bos_eos=False)
    with pytest.warns(UserWarning, match="no longer read"):
        text = vocab.decode_text(renderer.render_pair(pair(x2text_prob=1.0), random.Random(0), x2text_prob=0.0).ids)
    assert "This is input: a red circle" in text
