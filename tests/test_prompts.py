"""One prompt format: a training sample rendered up to the answer is the inference prompt, token for token."""

import random

import numpy as np
import pytest
import torch

from anygpt.checkpoints import Bundle
from anygpt.data.schema import ShardSample
from anygpt.generation.pipeline import AnyGPT, Media, Turn
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.prompts import TemplateRenderer, chat_prompt, chat_segments, placeholder
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab
from tests.generation.stub_tokenizers import stub_image, stub_music, stub_speech

SYSTEM = "You are a test model."


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    text = train_bpe_tokenizer(["describe this image please", "say hello", "a red square", "and this one: what?"] * 40,
                               vocab_size=320, directory=tmp_path_factory.mktemp("text"))
    tokenizers = {"image": stub_image(64), "speech": stub_speech(32), "music": stub_music(64)}
    vocab = UnifiedVocab(text, list(tokenizers.values()))
    with torch.device("meta"):
        model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=512))
    anygpt = AnyGPT(Bundle(model, vocab, tokenizers, SYSTEM))
    renderer = TemplateRenderer(vocab, {n: t.codec.flatten for n, t in tokenizers.items()}, system_prompt=SYSTEM)
    gen = torch.Generator().manual_seed(0)
    media = {"image0": Media("image", torch.rand(3, 32, 32, generator=gen)),
             "speech0": Media("speech", torch.rand(1, 3200, generator=gen)),
             "music0": Media("music", torch.rand(1, 3200, generator=gen))}
    codes = {name: tokenizers[m.modality].codec.encode([m.source])[0].numpy().astype(np.int16)
             for name, m in media.items()}
    return anygpt, renderer, media, codes


def answer_start(mask: list[bool], index: int) -> int:
    """Position of the first token of the ``index``-th trained run of ``mask``."""
    starts = [i for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1])]
    return starts[index]


def test_chat_training_dialogue_up_to_a_reply_is_the_inference_prompt(setup):
    anygpt, renderer, media, codes = setup
    turns = [("user", f"look {placeholder('image0')} please"), ("assistant", "a red square"),
             ("user", f"and this one: {placeholder('speech0')} {placeholder('music0')}"), ("assistant", "say hello")]
    sample = ShardSample("conversation", turns=[{"role": r, "message": m} for r, m in turns],
                         media={n: m.modality for n, m in media.items()}, key="k", codes=codes, shard="s.tar")
    rendered = renderer.render_conversation(sample, train_on="assistant")
    first = anygpt.user_message(["look ", media["image0"], " please"], task="none")
    history = [Turn("user", text=first), Turn("assistant", text="a red square")]
    parts = ["and this one: ", media["speech0"], " ", media["music0"]]
    for index, expected in enumerate([anygpt.prompt_ids(["look ", media["image0"], " please"], task="none",
                                                        template="chat"),
                                      anygpt.prompt_ids(parts, history, task="none", template="chat")]):
        cut = answer_start(rendered.mask, index)
        assert rendered.ids[:cut] == expected
    assert sum(rendered.mask) > 0 and rendered.ids[-1] == anygpt.vocab.text.eos_id


@pytest.mark.parametrize("direction", ["x2text", "text2x"])
def test_base_training_pair_up_to_the_answer_is_the_inference_prompt(setup, direction):
    anygpt, renderer, media, codes = setup
    instruction = "Please describe this image." if direction == "x2text" else "Draw a picture of this caption."

    class Fixed(random.Random):
        def choice(self, seq):
            return instruction

    sample = ShardSample("pair", text="a red square", media={"image0": "image"}, key="k",
                         codes={"image0": codes["image0"]}, shard="s.tar")
    rendered = renderer.render_pair(sample, Fixed(0), x2text_prob=float(direction == "x2text"), train_on="assistant")
    parts = [media["image0"]] if direction == "x2text" else ["a red square"]
    expected = anygpt.encode_prompt(anygpt.pair_prompt_text(instruction, parts, direction))
    assert rendered.ids[:answer_start(rendered.mask, 0)] == expected
    if direction == "x2text":  # the base template's own draw, with the instruction from the user's text
        assert anygpt.prompt_ids([instruction, media["image0"]], template="base") == expected


def test_chat_prompt_is_the_context_of_the_training_segments():
    segments, ends_with_reply = chat_segments(SYSTEM, [("user", "a"), ("assistant", "b"), ("user", "c")])
    assert not ends_with_reply and "".join(segments) == chat_prompt(SYSTEM, [("a", "b")], "c")
    assert segments == [f"{SYSTEM}\n[Human]: a<eoh>\n[MMGPT]:", " b<eos>", "\n[Human]: c<eoh>\n[MMGPT]:"]
    with pytest.raises(ValueError, match="unknown role 'system'"):
        chat_segments(None, [("system", "x")])
