"""The prompt strings the released AnyGPT models were trained on: the chat template with the release's task prompts,
and the base model's pretraining template. Each builds ONE string (media spelled out as their token strings) that
`UnifiedVocab.encode` tokenizes in one pass, as the release's slow LlamaTokenizer did.

    chat:  {system}\\n[Human]: {message}<eoh>\\n[MMGPT]: {reply}<eos>\\n[Human]: {message}<eoh>\\n[MMGPT]:
    base:  [Human]: {instruction} {X}<eoh> [MMGPT]:          (X -> text)
           [Human]: {instruction} This is input: {text}<eoh> [MMGPT]:   (text -> X)

The chat message is the user's text and media wrapped in the task prompt for the requested output modality
(`task_message`; the templates are data: ``release_prompts.json``). The base model's instruction is drawn from a pool
per direction: ours (`anygpt.data.templates`) or the release's own, read from a local copy of it (`load_instructions`).
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

RELEASE_PROMPTS = Path(__file__).with_name("release_prompts.json")
USER, BOT, USER_END, BOT_END = "[Human]", "[MMGPT]", "<eoh>", "<eos>"
TASKS = ("auto", "none", "text-to-image", "image-to-image", "text-to-speech", "text-to-music", "image-to-text",
         "speech-to-text", "music-to-text", "speech-instruction", "speech-instruction-text", "interleaved")


@cache
def release_prompts() -> dict:
    return json.loads(RELEASE_PROMPTS.read_text("utf-8"))


@dataclass
class MediaSpan:
    """An input media item, already spelled out as its token string (``<soim><👀5>...<eoim>``)."""

    modality: str
    text: str


def chat_prompt(system: str | None, history: Sequence[tuple[str, str]], message: str) -> str:
    """The release's chat template (its FastChat-style "MMGPT" conversation) ending where the model answers."""
    out = f"{system}\n" if system is not None else ""
    for user, assistant in history:
        out += f"{USER}: {user}{USER_END}\n{BOT}: {assistant}{BOT_END}\n"
    return out + f"{USER}: {message}{USER_END}\n{BOT}:"


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
# The base model
# ----------------------------------------------------------------------------------------------------------------------
def base_prompt(instruction: str, direction: str, content: str) -> str:
    """The pretraining template up to the answer: ``content`` is the media span (x2text) or the text (text2x)."""
    if direction == "x2text":
        return f"{USER}: {instruction} {content}{USER_END} {BOT}:"
    if direction == "text2x":
        return f"{USER}: {instruction} This is input: {content}{USER_END} {BOT}:"
    raise ValueError(f"direction must be 'x2text' or 'text2x', got {direction!r}")


@dataclass
class InstructionPools:
    """Instruction phrasings per direction ("x2text"/"text2x") and modality; ``pools`` None: anygpt's own
    (`anygpt.data.templates.instruction_pool`, generic phrasings for a plugin's modality)."""

    pools: Mapping[str, Mapping[str, Sequence[str]]] | None = None
    source: str = "anygpt"

    def draw(self, direction: str, modality: str, rng: random.Random) -> str:
        if self.pools is None:
            from anygpt.data.templates import instruction_pool

            pool = instruction_pool(modality, direction)
        else:
            pool = self.pools.get(direction, {}).get(modality)
        if not pool:
            raise ValueError(f"{self.source} has no {direction} instructions for {modality!r}")
        return rng.choice(list(pool))


def default_instructions() -> InstructionPools:
    """Our own phrasings (the ones anygpt's pretraining templates use)."""
    return InstructionPools()


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
    folder = path
    for candidate in (path, path / "anygpt" / "src" / "m_utils", path / "m_utils"):
        if (candidate / "other2text_instructions.py").is_file():
            folder = candidate
            break
    else:
        raise FileNotFoundError(f"{path} holds no other2text_instructions.py/text2other_instructions.py: pass the "
                                "release's clone (OpenMOSS/AnyGPT), its anygpt/src/m_utils folder, or a JSON file of "
                                "pools")
    pools = {}
    for direction, name in (("x2text", "other2text_instructions"), ("text2x", "text2other_instructions")):
        pools[direction] = _dict_literal(folder / f"{name}.py", name)
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
