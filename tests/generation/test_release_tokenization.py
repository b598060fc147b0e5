"""Prompts become exactly the ids the released AnyGPT's tokenizer gives.

The oracle is the release's own stack (transformers 4.34.1, slow ``LlamaTokenizer``, tokens added with ``add_tokens``
in the release's order, prompt strings built by the release's prompter), run once by
``release_oracle/make_expected.py`` on a SentencePiece model these tests train the same way (``spm_model.py``); its ids
are stored in ``release_oracle/expected.json``.
"""

import json
from pathlib import Path

import pytest

from anygpt.modalities.spec import RELEASE_MODALITIES
from anygpt.text_tokenizer import SentencePieceTextTokenizer
from anygpt.vocab import UnifiedVocab
from tests.generation.release_oracle import spm_model

EXPECTED = json.loads((Path(__file__).parent / "release_oracle" / "expected.json").read_text("utf-8"))
CASES = {case["name"]: case for case in EXPECTED["cases"]}


@pytest.fixture(scope="module")
def spm_file(tmp_path_factory):
    data = spm_model.train()
    assert spm_model.sha256(data) == EXPECTED["spm_sha256"], (
        "the SentencePiece trainer produced another model than the one the oracle encoded with (a different "
        "sentencepiece version?); re-run tests/generation/release_oracle/make_expected.py as its docstring says")
    path = tmp_path_factory.mktemp("spm") / "tokenizer.model"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module", params=[True, False], ids=["legacy", "non-legacy"])
def release_vocab(request, spm_file):
    text = SentencePieceTextTokenizer(spm_file, legacy=request.param)
    return UnifiedVocab(text, RELEASE_MODALITIES, instruction_tokens=True), request.param


def oracle_ids(case, legacy):
    ids = case["ids"]
    assert ids["memory"] == ids["saved"]  # added in memory (training) or reloaded from disk (inference): the same
    return ids["memory"] if legacy else ids["legacy_false"]


def test_the_model_the_oracle_saw_is_trained_bit_for_bit(spm_file):
    assert spm_model.sha256(spm_model.train()) == spm_model.sha256(spm_file.read_bytes())


def test_added_token_layout_equals_the_release(release_vocab):
    vocab, _ = release_vocab
    assert len(vocab) == EXPECTED["vocab_size"]
    for token, idx in EXPECTED["added_tokens"].items():
        assert vocab.token_id(token) == idx, token


@pytest.mark.parametrize("name", sorted(CASES))
def test_whole_prompt_strings_encode_like_the_release(release_vocab, name):
    vocab, legacy = release_vocab
    case = CASES[name]
    assert [vocab.text.bos_id, *vocab.encode(case["text"])] == oracle_ids(case, legacy)


def test_strip_flags_of_added_tokens_are_honoured(spm_file):
    """A folder whose added tokens eat the whitespace beside them (``lstrip``/``rstrip``) encodes as HF does."""
    from anygpt.vocab import INSTRUCTION_TOKENS, SPECIAL_TOKENS

    named = [*SPECIAL_TOKENS, *INSTRUCTION_TOKENS]
    vocab = UnifiedVocab(SentencePieceTextTokenizer(spm_file), RELEASE_MODALITIES, instruction_tokens=True,
                         strip={t: (True, True) for t in named})
    differs = 0
    for case in EXPECTED["cases"]:
        assert [vocab.text.bos_id, *vocab.encode(case["text"])] == case["ids"]["stripped"], case["name"]
        differs += case["ids"]["stripped"] != case["ids"]["memory"]
    assert differs > 10  # the flags matter for most prompts


def test_written_tokenizer_folders_look_like_the_release_and_load_back(release_vocab, tmp_path):
    from anygpt.checkpoints import write_tokenizer_files
    from anygpt.vocab import vocab_from_checkpoint

    vocab, legacy = release_vocab
    write_tokenizer_files(vocab, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == EXPECTED["saved_files"]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text("utf-8"))
    decoder = config.pop("added_tokens_decoder")
    expected_config = {**EXPECTED["tokenizer_config"], "legacy": legacy}
    assert config.keys() == expected_config.keys()
    for key in ("add_bos_token", "add_eos_token", "bos_token", "eos_token", "unk_token", "legacy", "tokenizer_class"):
        assert config[key] == expected_config[key], key
    for idx, entry in EXPECTED["added_tokens_decoder_sample"].items():
        assert decoder[idx] == entry
    assert json.loads((tmp_path / "special_tokens_map.json").read_text()) == EXPECTED["special_tokens_map"]
    loaded = vocab_from_checkpoint(tmp_path, RELEASE_MODALITIES)
    assert loaded.text.legacy == legacy and loaded.added_tokens == vocab.added_tokens
    case = CASES["chat-history"]
    assert [loaded.text.bos_id, *loaded.encode(case["text"])] == oracle_ids(case, legacy)


# -- the prompt builders ----------------------------------------------------------------------------------------------
def media_spans(vocab):
    """The oracle's media items as spans of our vocabulary (music flattened frame-major, as the release does)."""
    import torch

    from anygpt.modalities.registry import configured_modality
    from anygpt.prompts import MediaSpan

    media = EXPECTED["media"]
    flat = {"image": torch.tensor(media["image"]), "speech": torch.tensor(media["speech"]),
            "music": configured_modality("music")[1](torch.tensor(media["music"]))}
    return {name: MediaSpan(name, "".join(vocab.id_to_token(i) for i in vocab.encode_codes(name, codes)))
            for name, codes in flat.items()}


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["kind"] == "chat" and n != "chat-history"))
def test_chat_task_prompts_equal_the_release_prompter(release_vocab, name):
    from anygpt.prompts import chat_prompt, release_prompts, task_message

    vocab, legacy = release_vocab
    case, spans = CASES[name], media_spans(vocab)
    inputs = case["inputs"]
    task = {"image-captioning": "image-to-text"}.get(inputs["task"], inputs["task"])
    message = task_message(task, inputs.get("text", ""), [spans[m] for m in inputs.get("media", [])])
    prompt = chat_prompt(release_prompts()["system_prompt"], [], message)
    assert prompt == case["text"]
    assert [vocab.text.bos_id, *vocab.encode(prompt)] == oracle_ids(case, legacy)


def test_chat_history_and_spoken_replies_equal_the_release(release_vocab):
    from anygpt.prompts import chat_prompt, release_prompts, speech_response, task_message

    vocab, legacy = release_vocab
    case, spans = CASES["chat-history"], media_spans(vocab)
    first = task_message("speech-instruction", "", [spans["speech"]])
    reply = speech_response("Can you draw me a picture of a sunny beach?", "Sure, here it is. " + spans["speech"].text)
    history = [(first, reply), ("Thank you!  And now?", "You are welcome.")]
    prompt = chat_prompt(release_prompts()["system_prompt"], history, "Describe this: " + spans["image"].text)
    assert prompt == case["text"]
    assert [vocab.text.bos_id, *vocab.encode(prompt)] == oracle_ids(case, legacy)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["kind"] == "base"))
def test_base_model_prompts_equal_the_release(release_vocab, name):
    from anygpt.prompts import base_prompt

    vocab, legacy = release_vocab
    case, spans = CASES[name], media_spans(vocab)
    inputs = case["inputs"]
    content = spans[inputs["modality"]].text if inputs["direction"] == "x2text" else inputs["text"]
    prompt = base_prompt(inputs["instruction"], inputs["direction"], content)
    assert prompt == case["text"]
    assert [vocab.text.bos_id, *vocab.encode(prompt)] == oracle_ids(case, legacy)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["kind"] == "pretrain"))
def test_pretraining_samples_equal_the_release_stage_1(release_vocab, name):
    """Our training template on a shard sample gives the ids the release's stage 1 trained on (BOS ... </s>)."""
    import random

    import numpy as np

    from anygpt.data.schema import ShardSample
    from anygpt.modalities.registry import configured_modality
    from anygpt.prompts import TemplateRenderer, pair_text, placeholder

    vocab, legacy = release_vocab
    case = CASES[name]
    inputs = case["inputs"]
    modality = inputs["modality"]
    sample = ShardSample("pair", text=inputs["text"], media={"x": modality},
                         codes={"x": np.asarray(EXPECTED["media"][modality])}, key="k")
    renderer = TemplateRenderer(vocab, {"music": configured_modality("music")[1]})
    text = pair_text(inputs["direction"], inputs["instruction"], inputs["text"], placeholder("x"))
    assert renderer.render_text(text, sample) == case["text"]
    # render_pair draws direction and instruction: make it draw the oracle's
    prob = 1.0 if inputs["direction"] == "x2text" else 0.0

    class Fixed(random.Random):
        def choice(self, seq):
            return inputs["instruction"]

    expected = [*oracle_ids(case, legacy), vocab.text.eos_id]
    assert renderer.render_pair(sample, Fixed(0), prob).ids == expected
    answer = renderer.render_pair(sample, Fixed(0), prob, train_on="assistant")
    assert answer.ids == expected  # the loss mask does not change the ids
    prompt = renderer.render_text(text, sample).split("[MMGPT]:")[0] + "[MMGPT]:"  # the answer starts after it
    assert answer.mask == [False] * (1 + len(vocab.encode(prompt))) + [True] * (len(expected) - 1 - len(
        vocab.encode(prompt)))


def test_the_pipeline_prompts_like_the_release_chat_cli(spm_file):
    """`AnyGPT` (what ``anygpt chat`` runs) on a release-shaped vocabulary: the task prompt chosen by the requested
    output, the system prompt, the history, one encoding pass: the oracle's ids."""
    import torch

    from anygpt.checkpoints import RELEASE_SYSTEM_PROMPT, Bundle
    from anygpt.generation.pipeline import AnyGPT, Turn
    from anygpt.model.llama.config import Config
    from anygpt.model.llama.model import LLaMA
    from anygpt.prompts import speech_response

    vocab = UnifiedVocab(SentencePieceTextTokenizer(spm_file), RELEASE_MODALITIES, instruction_tokens=True)
    with torch.device("meta"):
        model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab)))
    anygpt = AnyGPT(Bundle(model, vocab, {}, RELEASE_SYSTEM_PROMPT, force_marker=False))
    assert anygpt.template == "chat"
    for name, output, text in (("chat-text-to-image", "image", "a red circle on a blue background"),
                               ("chat-text-to-image-no-period", "image", "two green squares"),
                               ("chat-task-text-to-speech", "speech", "Hello world, how are you?"),
                               ("chat-task-text-to-music", "music", "calm piano, slow tempo")):
        assert anygpt.prompt_ids([text], output=output) == oracle_ids(CASES[name], True), name
    spans = media_spans(vocab)
    history = [Turn("user", text=f"{spans['speech'].text} Please recognize the voice command and give reply and "
                                 "voice"),
               Turn("assistant", text=speech_response("Can you draw me a picture of a sunny beach?",
                                                      "Sure, here it is. " + spans["speech"].text)),
               Turn("user", text="Thank you!  And now?"), Turn("assistant", text="You are welcome.")]
    ids = anygpt.prompt_ids(["Describe this: " + spans["image"].text], history=history, task="none")
    assert ids == oracle_ids(CASES["chat-history"], True)
