"""A small LLaMA-style SentencePiece model, trained deterministically for the tokenization-parity tests.

The settings follow LLaMA's ``tokenizer.model`` (BPE, byte fallback, identity normalization, a dummy prefix, no
whitespace collapsing, digits split, ids 0/1/2 = <unk>/<s>/</s>); the corpus is fixed and training runs on one thread,
so the model file is the same bytes on every run (the parity test checks its SHA-256 against the one the oracle saw).
Plain Python on purpose: `make_expected.py` imports it inside the throwaway oracle environment too.
"""

from __future__ import annotations

import hashlib
import io

VOCAB_SIZE = 600

_SENTENCES = (
    "You are an AI assistant named MMGPT who can understand and generate multimodal content, including text, "
    "speech, images and audio.",
    "Please generate speech from the given text. Please read the given text.",
    "Please transcribe the given speech. Please generate text from the given speech.",
    "Please compose a piece of music from the given text. Please describe the picture briefly.",
    "Please interpret the given music and provide a textual description. Please generation an image.",
    "Please recognize the voice command and give reply and voice.",
    "Please interpret the user's voice commands, provide text responses, and generate corresponding voice replies.",
    "This is input: a red circle on a blue background. This is the first image. This is the second image.",
    "Describe this image in one sentence. What does the speaker say? Write a caption for the music.",
    "A bustling medieval market scene with vendors selling exotic goods under colorful tents.",
    "I could be bounded in a nutshell and count myself a king of infinite space.",
    "Two green squares and 3 yellow triangles, 42 dogs; it's 10:30 now!  Double  spaces\tand tabs.",
    "Hello world, how are you? I am fine, thank you. Can you draw me a picture of a sunny beach?",
    "Give me a similar style of music. Features an indie rock sound with distinct elements.",
)


def corpus() -> list[str]:
    """The training sentences: the fixed lines above, each also lower-cased, each repeated (counts matter to BPE)."""
    lines = []
    for i, line in enumerate(_SENTENCES):
        lines += [line] * (3 + i % 4) + [line.lower()] * 2
    return lines


def train(vocab_size: int = VOCAB_SIZE) -> bytes:
    """The serialized model (the bytes of a ``tokenizer.model``)."""
    import sentencepiece as spm

    spm.set_random_generator_seed(1234)
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=out, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, shuffle_input_sentence=False,
        max_sentencepiece_length=16, minloglevel=2)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
