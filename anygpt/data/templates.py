"""Prompt templates, applied when a shard sample is read: json + native codes -> token ids + loss mask.

Pretraining pairs (REFERENCE.md; the release writes ``[MMGPT]`` where the paper prints ``[AnyGPT]``)::

    X -> text:  [Human]: {instruction} {X}<eoh> [MMGPT]: {text}<eos>
    text -> X:  [Human]: {instruction} This is input: {text}<eoh> [MMGPT]: {X}<eos>

The direction is drawn per sample (``x2text_prob``, 0.5 by default; caption-only sources use 1.0) and the instruction
from a pool of phrasings for that modality and direction. Every token is trained on in pretraining.

Conversations (AnyInstruct-style, ``meta["conversation"]`` = list of ``{"role", "message"}``) use the chat layout
``{system}\\n[Human]: {message}<eoh>\\n[MMGPT]: {reply}<eos>\\n`` with the loss on the assistant replies only
(``train_on="assistant"``, instruction tuning) or on everything (``train_on="all"``).

Media enter text as placeholders ``<media:NAME>`` naming one of the sample's ``.npy`` items; they become the
modality's start marker, its flattened codes and its end marker.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from anygpt.data.shards import Sample
from anygpt.modalities.codec import frame_major_flatten as codec_frame_major_flatten
from anygpt.modalities.codec import frame_major_unflatten as codec_frame_major_unflatten
from anygpt.vocab import INSTRUCTION_TOKENS, UnifiedVocab

# Flatten = native codes -> 1-D local ids in [0, codebook_size). A `Modality` provides its own `flatten`.
Flatten = Callable[[torch.Tensor], torch.Tensor]

PLACEHOLDER = re.compile(r"<media:([\w.\-]+)>")
ANSWER_START = "[MMGPT]:"  # where the model's answer begins in every template


def placeholder(name: str) -> str:
    return f"<media:{name}>"


def _flat_turns(turns: list) -> list[dict]:
    """AnyInstruct nests a conversation's messages one level deeper ([[user, assistant], ...])."""
    return [m for t in turns for m in (t if isinstance(t, list) else [t])]


# ----------------------------------------------------------------------------------------------------------------------
# Code layouts
# ----------------------------------------------------------------------------------------------------------------------
def identity_flatten(codes: torch.Tensor) -> torch.Tensor:
    return codes.reshape(-1).long()


def frame_major_flatten(codebook_size: int, num_codebooks: int) -> Flatten:
    """Codes [Q, T] -> frame-major ids, by the codec's one implementation (`anygpt.modalities.codec`)."""
    if codebook_size % num_codebooks:
        raise ValueError(f"codebook_size {codebook_size} is not divisible by num_codebooks {num_codebooks}")
    return partial(codec_frame_major_flatten, codebooks=num_codebooks, bins=codebook_size // num_codebooks)


def layout_flatten(layout: str, codebook_size: int) -> Flatten:
    """A flatten function by name: ``identity`` or ``frame_major:Q`` (Q codebooks, e.g. ``frame_major:4``)."""
    if layout == "identity":
        return identity_flatten
    if layout.startswith("frame_major:"):
        return frame_major_flatten(codebook_size, int(layout.split(":", 1)[1]))
    raise ValueError(f"Unknown code layout {layout!r}; use 'identity' or 'frame_major:Q'")


def frame_major_unflatten(codebook_size: int, num_codebooks: int) -> Flatten:
    """The inverse of `frame_major_flatten`, checking whole frames and codebook ranges (`anygpt.modalities.codec`)."""
    return partial(codec_frame_major_unflatten, codebooks=num_codebooks, bins=codebook_size // num_codebooks,
                   strict=True)


def layout_unflatten(layout: str, codebook_size: int) -> Flatten:
    """The inverse of `layout_flatten`: 1-D local ids -> native codes."""
    if layout == "identity":
        return lambda ids: torch.as_tensor(ids).long().reshape(-1)
    if layout.startswith("frame_major:"):
        return frame_major_unflatten(codebook_size, int(layout.split(":", 1)[1]))
    raise ValueError(f"Unknown code layout {layout!r}; use 'identity' or 'frame_major:Q'")


# ----------------------------------------------------------------------------------------------------------------------
# Instruction pools (our own phrasings; several per modality and direction)
# ----------------------------------------------------------------------------------------------------------------------
X2TEXT_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "image": (
        "Please describe this image.",
        "What does this picture show?",
        "Write a short caption for the image below.",
        "Describe the content of this image in one sentence.",
        "Give a brief description of what you see.",
    ),
    "speech": (
        "Please transcribe this speech.",
        "Write down what is said in this recording.",
        "Convert the following speech into text.",
        "What does the speaker say?",
        "Transcribe the audio below.",
    ),
    "music": (
        "Please describe this music.",
        "Write a caption for the following piece of music.",
        "What does this music sound like?",
        "Describe the instruments, mood and style of this clip.",
        "Give a short description of the music below.",
    ),
}
TEXT2X_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "image": (
        "Generate an image of the following description.",
        "Draw a picture that matches this caption.",
        "Create an image based on the text.",
        "Please produce an image for this description.",
        "Make a picture of what the text describes.",
    ),
    "speech": (
        "Read the following text aloud.",
        "Please speak this sentence.",
        "Convert the text into speech.",
        "Say the following words.",
        "Produce a spoken version of this text.",
    ),
    "music": (
        "Compose a piece of music from the following description.",
        "Generate music that fits this caption.",
        "Please create music matching the text.",
        "Write a short music clip for this description.",
        "Produce music in the style described below.",
    ),
}
GENERIC_X2TEXT = ("Please describe this {modality}.", "What is in this {modality}?")
GENERIC_TEXT2X = ("Generate {modality} for the following description.", "Please create {modality} from this text.")


def instruction_pool(modality: str, direction: str) -> tuple[str, ...]:
    """The instructions for ``modality`` in ``direction`` ("x2text" or "text2x"); new modalities get generic ones."""
    pools, generic = (X2TEXT_INSTRUCTIONS, GENERIC_X2TEXT) if direction == "x2text" else (TEXT2X_INSTRUCTIONS,
                                                                                          GENERIC_TEXT2X)
    return pools.get(modality) or tuple(g.format(modality=modality) for g in generic)


# ----------------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Rendered:
    """Token ids of one sample and which of them carry loss."""

    ids: list[int] = field(default_factory=list)
    mask: list[bool] = field(default_factory=list)

    def add(self, ids: list[int], trained: bool) -> None:
        self.ids.extend(ids)
        self.mask.extend([trained] * len(ids))

    def __len__(self) -> int:
        return len(self.ids)


class TemplateRenderer:
    """Turns decoded shard samples into token ids with the templates above.

    Args:
        vocab: the unified vocabulary.
        flatten: modality name -> function from native codes to 1-D local ids (missing names: ``reshape(-1)``).
        add_bos_eos: wrap every sample in the text tokenizer's BOS/EOS as the release did (``<s> ... </s>``).
        system_prompt: first line of rendered conversations (None: a conversation's own ``meta["system"]`` or none).
    """

    def __init__(self, vocab: UnifiedVocab, flatten: Mapping[str, Flatten] | None = None, add_bos_eos: bool = True,
                 system_prompt: str | None = None) -> None:
        self.vocab = vocab
        self.flatten = dict(flatten or {})
        self.add_bos_eos = add_bos_eos
        self.system_prompt = system_prompt

    # -- pieces --------------------------------------------------------------------------------------------------------
    def media_ids(self, sample: Sample, name: str) -> list[int]:
        media = sample.media
        if name not in media or name not in sample.codes:
            raise KeyError(f"sample {sample.key} of {sample.shard}: placeholder <media:{name}> names no media item "
                           f"(it has {sorted(media)})")
        modality = media[name]
        codes = torch.from_numpy(np.asarray(sample.codes[name]).astype(np.int64))
        if name in (sample.meta.get("all_levels") or ()):  # all RVQ levels kept (SoundStorm): the LLM reads level 1
            codes = codes[0]
        flat = self.flatten.get(modality, identity_flatten)(codes)
        return self.vocab.encode_codes(modality, flat)

    def encode(self, text: str, sample: Sample) -> list[int]:
        """Text with ``<media:NAME>`` placeholders -> ids: the media spelled out as their token strings, the whole
        string encoded once (`UnifiedVocab.encode`), as the release tokenized its templates."""
        return self.vocab.encode(self.render_text(text, sample))

    def encode_segments(self, segments: list[str], sample: Sample) -> list[list[int]]:
        """Like `encode` on the concatenation, with the ids split by the segment their text starts in."""
        return self.vocab.encode_segments([self.render_text(seg, sample) for seg in segments])

    def _wrap(self, body: Rendered, trained: bool) -> Rendered:
        if not self.add_bos_eos:
            return body
        text = self.vocab.text
        out = Rendered()
        if text.bos_id is not None:
            out.add([text.bos_id], False)
        out.add(body.ids, False)
        out.mask[len(out.mask) - len(body.ids):] = body.mask
        if text.eos_id is not None:
            out.add([text.eos_id], trained)
        return out

    # -- templates -----------------------------------------------------------------------------------------------------
    @staticmethod
    def pair_text(direction: str, instruction: str, text: str, media: str) -> str:
        """The pretraining template string with the media item as a placeholder."""
        if direction == "x2text":
            return f"[Human]: {instruction} {media}<eoh> [MMGPT]: {text}<eos>"
        if direction == "text2x":
            return f"[Human]: {instruction} This is input: {text}<eoh> [MMGPT]: {media}<eos>"
        raise ValueError(f"direction must be 'x2text' or 'text2x', got {direction!r}")

    def render_pair(self, sample: Sample, rng: random.Random, x2text_prob: float = 0.5,
                    train_on: str = "all") -> Rendered:
        """A (media, text) pair in a random direction with a random instruction; loss on every token (the paper's
        pretraining) or, with ``train_on="assistant"``, on the ``[MMGPT]:`` answer only (the conditional half: the
        caption, transcript or media tokens, not the unconditional modelling of the prompt)."""
        if train_on not in ("assistant", "all"):
            raise ValueError(f"train_on must be 'assistant' or 'all', got {train_on!r}")
        media = sample.media
        if len(media) != 1:
            raise ValueError(f"sample {sample.key} of {sample.shard}: a pair needs exactly one media item, got "
                             f"{sorted(media)}")
        (name, modality), = media.items()
        prob = float(sample.meta.get("x2text_prob", x2text_prob))
        direction = "x2text" if rng.random() < prob else "text2x"
        instruction = rng.choice(instruction_pool(modality, direction))
        body = Rendered()
        text = sample.meta["text"]
        if isinstance(text, list):  # several references (COCO's five captions): one per draw
            text = rng.choice(text)
        rendered = self.pair_text(direction, instruction, text, placeholder(name))
        if train_on == "all":
            body.add(self.encode(rendered, sample), True)
        else:  # split where generation starts, as chat turns are (and as the inference prompt ends)
            cut = rendered.index(ANSWER_START) + len(ANSWER_START)
            prompt, answer = self.encode_segments([rendered[:cut], rendered[cut:]], sample)
            body.add(prompt, False)
            body.add(answer, True)
        return self._wrap(body, True)

    def render_interleaved(self, sample: Sample) -> Rendered:
        """A document of text with media placeholders (MMC4-style), trained on every token."""
        body = Rendered()
        body.add(self.encode(sample.meta["text"], sample), True)
        return self._wrap(body, True)

    def render_conversation(self, sample: Sample, train_on: str = "assistant") -> Rendered:
        """Multi-turn chat; ``train_on="assistant"`` trains on replies (incl. their ``<eos>`` and the closing ``</s>``
        after the last one), ``"all"`` on all."""
        if train_on not in ("assistant", "all"):
            raise ValueError(f"train_on must be 'assistant' or 'all', got {train_on!r}")
        every = train_on == "all"
        turns = sample.meta["conversation"]
        if not self.vocab.instruction_tokens and any(
                t in turn.get("message", "") for turn in _flat_turns(turns) for t in INSTRUCTION_TOKENS):
            raise ValueError(f"sample {sample.key} of {sample.shard} uses <-Ins->/<-Res-> but the vocabulary has no "
                             "instruction tokens; set instruction_tokens: true")
        if turns and isinstance(turns[0], list):  # AnyInstruct nests the turns one level deeper
            turns = turns[0]
        system = self.system_prompt if self.system_prompt is not None else sample.meta.get("system")
        segments: list[str] = []  # alternating context / reply, encoded as one string
        prompt = f"{system}\n" if system else ""
        for turn in turns:
            role, message = turn["role"], turn["message"]
            if role == "user":
                prompt += f"[Human]: {message}<eoh>\n[MMGPT]:"
            elif role == "assistant":
                segments += [prompt, f" {message}<eos>"]
                prompt = "\n"
            else:
                raise ValueError(f"sample {sample.key} of {sample.shard}: unknown role {role!r} (user/assistant)")
        ends_with_reply = prompt == "\n"
        if prompt and not ends_with_reply:  # a trailing user turn without reply: context only
            segments.append(prompt)
        body = Rendered()
        for i, ids in enumerate(self.encode_segments(segments, sample)):
            body.add(ids, every or i % 2 == 1)
        # The closing </s> after the last reply is a target, as in the release's SFT masking.
        return self._wrap(body, every or ends_with_reply)

    def render(self, sample: Sample, rng: random.Random, x2text_prob: float = 0.5, train_on: str = "all") -> Rendered:
        """Pick the template from the sample: ``conversation`` -> chat, ``task == "interleaved"`` -> document,
        otherwise a (media, text) pair."""
        if "conversation" in sample.meta:
            return self.render_conversation(sample, train_on=train_on)
        if sample.meta.get("task") == "interleaved":
            return self.render_interleaved(sample)
        return self.render_pair(sample, rng, x2text_prob, train_on=train_on)

    def render_text(self, text: str, sample: Sample) -> str:
        """The full string a template produces, media spelled out as their token strings."""

        def spell(match: re.Match) -> str:
            ids = self.media_ids(sample, match.group(1))
            return "".join(self.vocab.id_to_token(i) for i in ids)

        return PLACEHOLDER.sub(spell, text)
