"""The one prompt format of AnyGPT, for training samples and inference prompts alike, so the two cannot drift.

The release's strings (REFERENCE.md; the release writes ``[MMGPT]`` where the paper prints ``[AnyGPT]``)::

    chat:  {system}\\n[Human]: {message}<eoh>\\n[MMGPT]: {reply}<eos>\\n[Human]: {message}<eoh>\\n[MMGPT]: ...
    base:  [Human]: {instruction} {X}<eoh> [MMGPT]: {text}<eos>                   (X -> text)
           [Human]: {instruction} This is input: {text}<eoh> [MMGPT]: {X}<eos>    (text -> X)

Inference prompts are these strings cut where the model answers (`chat_prompt`, `base_prompt`); training renders the
whole string of a shard sample (`TemplateRenderer`) with the loss on every token or on the answers only. Each is ONE
string, media spelled out as their token strings, encoded in one pass as the release's slow LlamaTokenizer did. Chat
messages may be wrapped in the release's task prompts (`task_message`, data in ``release_prompts.json``); base-model
instructions come from pools (`instruction_pool`, or the release's own via `load_instructions`).
"""

from __future__ import annotations

import ast
import json
import random
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch

from anygpt.data.schema import ShardSample
from anygpt.vocab import INSTRUCTION_TOKENS, UnifiedVocab

TEMPLATES = ("chat", "base")  # the chat template (`chat_segments`) and the base one (`base_prompt`)

RELEASE_PROMPTS = Path(__file__).with_name("release_prompts.json")
USER, BOT, USER_END, BOT_END = "[Human]", "[MMGPT]", "<eoh>", "<eos>"
ANSWER_START = f"{BOT}:"  # where the model's answer begins in every template
TASKS = ("auto", "none", "text-to-image", "image-to-image", "text-to-speech", "text-to-music", "image-to-text",
         "speech-to-text", "music-to-text", "speech-instruction", "speech-instruction-text", "interleaved")
PLACEHOLDER = re.compile(r"<media:([\w.\-]+)>")


def placeholder(name: str) -> str:
    """A training sample's reference to its media item ``name`` (spelled out as tokens when rendered)."""
    return f"<media:{name}>"


@cache
def release_prompts() -> dict:
    """The release's system prompt, task prompts and spoken-reply template."""
    return json.loads(RELEASE_PROMPTS.read_text("utf-8"))


# ----------------------------------------------------------------------------------------------------------------------
# The templates
# ----------------------------------------------------------------------------------------------------------------------
def base_prompt(instruction: str, direction: str, content: str) -> str:
    """The pretraining template up to the answer: ``content`` is the media (x2text) or the text (text2x)."""
    if direction == "x2text":
        return f"{USER}: {instruction} {content}{USER_END} {ANSWER_START}"
    if direction == "text2x":
        return f"{USER}: {instruction} This is input: {content}{USER_END} {ANSWER_START}"
    raise ValueError(f"direction must be 'x2text' or 'text2x', got {direction!r}")


def pair_text(direction: str, instruction: str, text: str, media: str) -> str:
    """The whole pretraining sample: `base_prompt` and its answer (the text for x2text, the media for text2x)."""
    content, answer = (media, text) if direction == "x2text" else (text, media)
    return f"{base_prompt(instruction, direction, content)} {answer}{BOT_END}"


def chat_segments(system: str | None, messages: Sequence[tuple[str, str]]) -> tuple[list[str], bool]:
    """A conversation ``[(role, message), ...]`` (roles ``user``/``assistant``) in the chat template, as segments
    that alternate context and reply (the context first, possibly empty); a trailing user message ends with the
    ``[MMGPT]:`` the model answers after. Returns the segments and whether the last one is a reply. An empty or None
    ``system`` writes no system line."""
    segments: list[str] = []
    context = f"{system}\n" if system else ""
    for role, message in messages:
        if role == "user":
            context += f"{USER}: {message}{USER_END}\n{ANSWER_START}"
        elif role == "assistant":
            segments += [context, f" {message}{BOT_END}"]
            context = "\n"
        else:
            raise ValueError(f"unknown role {role!r} (user/assistant)")
    ends_with_reply = context == "\n"
    if context and not ends_with_reply:
        segments.append(context)
    return segments, ends_with_reply


def chat_prompt(system: str | None, history: Sequence[tuple[str, str]], message: str) -> str:
    """The chat template (the release's FastChat-style "MMGPT" conversation) ending where the model answers."""
    messages = [m for user, assistant in history for m in (("user", user), ("assistant", assistant))]
    return "".join(chat_segments(system, [*messages, ("user", message)])[0])


# ----------------------------------------------------------------------------------------------------------------------
# The release's task prompts
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class MediaSpan:
    """An input media item, already spelled out as its token string (``<soim><👀5>...<eoim>``)."""

    modality: str
    text: str


def pick_task(output: str, text: str, media: Sequence[MediaSpan]) -> str:
    """The release task prompt for a message: by the requested output modality and what the message holds."""
    kinds = [m.modality for m in media]
    if not kinds:
        return {"image": "text-to-image", "speech": "text-to-speech", "music": "text-to-music"}.get(output, "none")
    if "speech" in kinds:
        return "speech-instruction-text" if output == "text" and kinds == ["speech"] and not text else (
            "speech-instruction" if kinds == ["speech"] and not text else "interleaved")
    if output == "image" and kinds == ["image"]:
        return "image-to-image"
    if output == "text" and not text and len(kinds) == 1:
        return {"image": "image-to-text", "music": "music-to-text"}.get(kinds[0], "interleaved")
    return "interleaved"


def task_message(task: str, text: str, media: Sequence[MediaSpan]) -> str:
    """The user's text and media as the release's prompter writes them for ``task``.

    ``none`` keeps the message as written (media where they stand in ``text``'s order is not known here, so they go
    first); ``interleaved`` is the release chat CLI's own: images, music, then speech, each followed by a space, then
    the text, all wrapped in the speech-instruction prompt when there is speech.
    """
    tasks = release_prompts()["tasks"]
    spans = " ".join(m.text for m in media)
    if task in ("none", "interleaved"):
        order = {"image": 0, "music": 1, "speech": 2}
        ordered = sorted(media, key=lambda m: order.get(m.modality, 3)) if task == "interleaved" else media
        message = "".join(m.text + " " for m in ordered) + text
        if task == "interleaved" and any(m.modality == "speech" for m in media):
            message = tasks["speech-instruction"].format(media=message)
        return message.strip()
    if task not in tasks:
        raise ValueError(f"unknown task prompt {task!r}; choose one of {', '.join(TASKS)}")
    if task == "text-to-image" and text and text[-1] not in ".!?":
        text += "."
    return tasks[task].format(text=text, media=spans).strip()


def speech_response(instruction: str, response: str) -> str:
    """An assistant turn of a spoken dialogue: the transcript of the user's speech, then the answer."""
    return release_prompts()["speech_response"].format(instruction=instruction, response=response)


# ----------------------------------------------------------------------------------------------------------------------
# Instruction pools (our own phrasings; several per modality and direction)
# ----------------------------------------------------------------------------------------------------------------------
X2TEXT_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "image": ("Please describe this image.", "What does this picture show?",
              "Write a short caption for the image below.", "Describe the content of this image in one sentence.",
              "Give a brief description of what you see."),
    "speech": ("Please transcribe this speech.", "Write down what is said in this recording.",
               "Convert the following speech into text.", "What does the speaker say?", "Transcribe the audio below."),
    "music": ("Please describe this music.", "Write a caption for the following piece of music.",
              "What does this music sound like?", "Describe the instruments, mood and style of this clip.",
              "Give a short description of the music below."),
}
TEXT2X_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "image": ("Generate an image of the following description.", "Draw a picture that matches this caption.",
              "Create an image based on the text.", "Please produce an image for this description.",
              "Make a picture of what the text describes."),
    "speech": ("Read the following text aloud.", "Please speak this sentence.", "Convert the text into speech.",
               "Say the following words.", "Produce a spoken version of this text."),
    "music": ("Compose a piece of music from the following description.", "Generate music that fits this caption.",
              "Please create music matching the text.", "Write a short music clip for this description.",
              "Produce music in the style described below."),
}
GENERIC_X2TEXT = ("Please describe this {modality}.", "What is in this {modality}?")
GENERIC_TEXT2X = ("Generate {modality} for the following description.", "Please create {modality} from this text.")


def instruction_pool(modality: str, direction: str) -> tuple[str, ...]:
    """The instructions for ``modality`` in ``direction`` ("x2text" or "text2x"); new modalities get generic ones."""
    pools, generic = (X2TEXT_INSTRUCTIONS, GENERIC_X2TEXT) if direction == "x2text" else (TEXT2X_INSTRUCTIONS,
                                                                                          GENERIC_TEXT2X)
    return pools.get(modality) or tuple(g.format(modality=modality) for g in generic)


@dataclass
class InstructionPools:
    """Instruction phrasings per direction ("x2text"/"text2x") and modality; ``pools`` None: anygpt's own
    (`instruction_pool`, generic phrasings for a plugin's modality)."""

    pools: Mapping[str, Mapping[str, Sequence[str]]] | None = None
    source: str = "anygpt"

    def draw(self, direction: str, modality: str, rng: random.Random) -> str:
        pool = instruction_pool(modality, direction) if self.pools is None else \
            self.pools.get(direction, {}).get(modality)
        if not pool:
            raise ValueError(f"{self.source} has no {direction} instructions for {modality!r}")
        return rng.choice(list(pool))


def load_instructions(path: str | Path) -> InstructionPools:
    """The release's instruction pools from a local copy of it, so a base model sees the phrasings it was trained on.

    ``path``: the release's clone (its ``anygpt/src/m_utils/{other2text,text2other}_instructions.py`` are read), that
    ``m_utils`` folder, or a JSON file ``{"x2text": {modality: [...]}, "text2x": {...}}``. The Python files are parsed
    (`ast.literal_eval` of their dict literal), never run.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        data = json.loads(path.read_text("utf-8"))
        if not isinstance(data, dict) or not {"x2text", "text2x"} <= set(data):
            raise ValueError(f"{path}: expected a JSON object with 'x2text' and 'text2x' pools")
        return InstructionPools(data, str(path))
    folder = next((candidate for candidate in (path, path / "anygpt" / "src" / "m_utils", path / "m_utils")
                   if (candidate / "other2text_instructions.py").is_file()), None)
    if folder is None:
        raise FileNotFoundError(f"{path} holds no other2text_instructions.py/text2other_instructions.py: pass the "
                                "release's clone (OpenMOSS/AnyGPT), its anygpt/src/m_utils folder, or a JSON file of "
                                "pools")
    pools = {direction: _dict_literal(folder / f"{name}.py", name)
             for direction, name in (("x2text", "other2text_instructions"), ("text2x", "text2other_instructions"))}
    return InstructionPools(pools, str(folder))


def _dict_literal(file: Path, name: str) -> dict[str, list[str]]:
    tree = ast.parse(file.read_text("utf-8"), filename=str(file))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(f"{file}: {name} is not a plain dict of lists of strings ({err})") from None
            if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
                return value
            raise ValueError(f"{file}: {name} is not a dict of lists")
    raise ValueError(f"{file} defines no {name} = {{...}}")


# ----------------------------------------------------------------------------------------------------------------------
# Training samples
# ----------------------------------------------------------------------------------------------------------------------
Flatten = Callable[[torch.Tensor], torch.Tensor]  # native codes -> 1-D local ids in [0, codebook_size)


@dataclass
class Rendered:
    """Token ids of one sample and which of them carry loss."""

    ids: list[int] = field(default_factory=list)
    mask: list[bool] = field(default_factory=list)
    task: str = ""  # what the sample teaches ("speech -> text", "dialogue", ...): `benchmarks.mixture` counts it

    def __len__(self) -> int:
        return len(self.ids)


class TemplateRenderer:
    """Shard samples -> token ids and loss mask in the templates above, applied when the data is read (a template
    change needs no re-tokenization).

    Pairs draw their direction per sample (``x2text_prob``) and the instruction from `instruction_pool`; every token
    is trained on (the paper's pretraining) or, with ``train_on="assistant"``, the answer only. Conversations
    (``turns``, AnyInstruct-style ``{"role", "message"}`` turns) train on the replies (``assistant``)
    or on everything (``all``). Interleaved documents train on every token. Media enter text as placeholders
    ``<media:NAME>`` naming one of the sample's ``.npy`` items: the modality's start marker, its flattened codes and
    its end marker.

    Args:
        vocab: the unified vocabulary.
        flatten: modality name -> function from native codes to 1-D local ids (missing names: ``reshape(-1)``).
        add_bos_eos: wrap every sample in the text tokenizer's BOS/EOS as the release did (``<s> ... </s>``).
        system_prompt: first line of rendered conversations (None: a conversation's own ``system`` or none).
    """

    def __init__(self, vocab: UnifiedVocab, flatten: Mapping[str, Flatten] | None = None, add_bos_eos: bool = True,
                 system_prompt: str | None = None) -> None:
        self.vocab, self.flatten, self.add_bos_eos = vocab, dict(flatten or {}), add_bos_eos
        self.system_prompt, self._stale_direction_warned = system_prompt, False
        self._pairs = {(r.start_id, r.end_id) for r in vocab.modalities.values()}  # every modality's marker ids

    # -- pieces --------------------------------------------------------------------------------------------------------
    def media_ids(self, sample: ShardSample, name: str) -> list[int]:
        media = sample.media
        if name not in media or name not in sample.codes:
            raise KeyError(f"sample {sample.key} of {sample.shard}: placeholder <media:{name}> names no media item "
                           f"(it has {sorted(media)})")
        modality = media[name]
        codes = np.asarray(sample.codes[name])
        if name in sample.all_levels:  # all RVQ levels kept (SoundStorm): the LLM reads level 1
            codes = codes[0]
        flatten = self.flatten.get(modality)  # none: the codes as they are, in one row
        flat = codes if flatten is None else flatten(torch.from_numpy(codes.astype(np.int64, copy=False)))
        return self.vocab.encode_codes(modality, flat)

    def render_text(self, text: str, sample: ShardSample) -> str:
        """The full string a template produces, media spelled out as their token strings."""
        spell = self.vocab.id_to_token
        return PLACEHOLDER.sub(lambda m: "".join(spell(i) for i in self.media_ids(sample, m.group(1))), text)

    def encode(self, text: str, sample: ShardSample) -> list[int]:
        """Text with ``<media:NAME>`` placeholders -> ids: what `UnifiedVocab.encode` gives for the whole string with
        the media spelled out as their token strings (`render_text`), as the release tokenized its templates."""
        return self.encode_segments([text], sample)[0]

    def encode_segments(self, segments: list[str], sample: ShardSample) -> list[list[int]]:
        """Like `encode` on the concatenation, with the ids split by the segment their text starts in.

        The fast path: each media item enters the string as its two markers only and its codes are put back between
        them afterwards; code tokens only ever neighbour other added tokens, so they change nothing around them and
        the ids equal those of the spelled-out string. Where the text itself holds an empty marker pair the codes
        could land in the wrong place, so such a sample takes the spelled-out string."""
        spans: list[list[int]] = []
        vocab = self.vocab

        def short(match: re.Match) -> str:
            ids = self.media_ids(sample, match.group(1))
            spans.append(ids)
            return vocab.id_to_token(ids[0]) + vocab.id_to_token(ids[-1])

        encoded = vocab.encode_segments([PLACEHOLDER.sub(short, seg) for seg in segments])
        if not spans:
            return encoded
        pairs, out, k = self._pairs, [], 0
        for ids in encoded:
            spliced: list[int] = []
            last = 0
            for i in range(len(ids) - 1):
                if (ids[i], ids[i + 1]) in pairs:
                    if k == len(spans) or (ids[i], ids[i + 1]) != (spans[k][0], spans[k][-1]):
                        return vocab.encode_segments([self.render_text(seg, sample) for seg in segments])
                    spliced += ids[last: i + 1]
                    spliced += spans[k][1:-1]
                    last, k = i + 1, k + 1
            out.append(spliced + ids[last:])
        if k != len(spans):
            return vocab.encode_segments([self.render_text(seg, sample) for seg in segments])
        return out

    def _assemble(self, parts: Sequence[list[int]], trained: Sequence[bool], closing: bool) -> Rendered:
        """The ids of ``parts`` with their loss flags, wrapped in BOS and EOS (``closing``: whether the EOS is a
        target) when ``add_bos_eos``; built in one pass, as this runs for every training sample."""
        bos, eos = (self.vocab.text.bos_id, self.vocab.text.eos_id) if self.add_bos_eos else (None, None)
        ids: list[int] = [bos] if bos is not None else []
        mask: list[bool] = [False] * len(ids)
        for part, flag in zip(parts, trained, strict=True):
            ids += part
            mask += [flag] * len(part)
        if eos is not None:
            ids.append(eos)
            mask.append(closing)
        return Rendered(ids, mask)

    # -- templates -----------------------------------------------------------------------------------------------------
    def render_pair(self, sample: ShardSample, rng: random.Random, x2text_prob: float = 0.5,
                    train_on: str = "all") -> Rendered:
        """A (media, text) pair in a random direction with a random instruction; loss on every token or, with
        ``train_on="assistant"``, on the answer only (the caption, transcript or media tokens, not the unconditional
        modelling of the prompt)."""
        if train_on not in ("assistant", "all"):
            raise ValueError(f"train_on must be 'assistant' or 'all', got {train_on!r}")
        media = sample.media
        if len(media) != 1:
            raise ValueError(f"sample {sample.key} of {sample.shard}: a pair needs exactly one media item, got "
                             f"{sorted(media)}")
        (name, modality), = media.items()
        if sample.stale_direction and not self._stale_direction_warned:  # shards of an older `anygpt prepare`
            self._stale_direction_warned = True
            warnings.warn(f"{sample.shard} stores x2text_prob per sample; it is no longer read: the training config's "
                          "Source x2text_prob decides the direction", stacklevel=2)
        direction = "x2text" if rng.random() < x2text_prob else "text2x"
        instruction = rng.choice(instruction_pool(modality, direction))
        text = sample.text
        if isinstance(text, list):  # several references (COCO's five captions): one per draw
            text = rng.choice(text)
        rendered = pair_text(direction, instruction, text, placeholder(name))
        task = f"{modality} -> text" if direction == "x2text" else f"text -> {modality}"
        if train_on == "all":
            return replace(self._assemble([self.encode(rendered, sample)], [True], True), task=task)
        # split where generation starts, as chat turns are (and as the inference prompt ends)
        cut = rendered.index(ANSWER_START) + len(ANSWER_START)
        parts = self.encode_segments([rendered[:cut], rendered[cut:]], sample)
        return replace(self._assemble(parts, [False, True], True), task=task)

    def render_interleaved(self, sample: ShardSample) -> Rendered:
        """A document of text with media placeholders (MMC4-style), trained on every token."""
        return replace(self._assemble([self.encode(sample.text, sample)], [True], True), task="interleaved document")

    def render_conversation(self, sample: ShardSample, train_on: str = "assistant") -> Rendered:
        """Multi-turn chat; ``train_on="assistant"`` trains on replies (incl. their ``<eos>`` and the closing ``</s>``
        after the last one), ``"all"`` on all."""
        if train_on not in ("assistant", "all"):
            raise ValueError(f"train_on must be 'assistant' or 'all', got {train_on!r}")
        every = train_on == "all"
        turns = sample.turns
        flat = [m for t in turns for m in (t if isinstance(t, list) else [t])]
        if not self.vocab.instruction_tokens and any(
                t in turn.get("message", "") for turn in flat for t in INSTRUCTION_TOKENS):
            raise ValueError(f"sample {sample.key} of {sample.shard} uses <-Ins->/<-Res-> but the vocabulary has no "
                             "instruction tokens; set instruction_tokens: true")
        if turns and isinstance(turns[0], list):  # AnyInstruct nests the turns one level deeper
            turns = turns[0]
        system = self.system_prompt if self.system_prompt is not None else sample.system
        try:
            segments, ends_with_reply = chat_segments(system, [(t["role"], t["message"]) for t in turns])
        except ValueError as err:
            raise ValueError(f"sample {sample.key} of {sample.shard}: {err}") from None
        encoded = self.encode_segments(segments, sample)
        # The closing </s> after the last reply is a target, as in the release's SFT masking.
        return replace(self._assemble(encoded, [every or i % 2 == 1 for i in range(len(encoded))],
                                      every or ends_with_reply), task="dialogue")

    def render(self, sample: ShardSample, rng: random.Random, x2text_prob: float = 0.5,
               train_on: str = "all") -> Rendered:
        """Pick the template by the sample's ``kind``: a conversation, an interleaved document or a (media, text)
        pair."""
        if sample.kind == "conversation":
            return self.render_conversation(sample, train_on=train_on)
        if sample.kind == "interleaved":
            return self.render_interleaved(sample)
        return self.render_pair(sample, rng, x2text_prob, train_on=train_on)
