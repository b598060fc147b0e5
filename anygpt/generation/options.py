"""The options of talking to a model, defined once and shared by `AnyGPT`, ``anygpt chat``, ``anygpt generate`` and
``anygpt benchmark``: how a checkpoint is opened (`LoadingOptions`), how prompts are written (`PromptOptions`) and how
replies are decoded (`DecodingOptions`).

On a command line each group is a nested option (jsonargparse): ``--prompt.template chat``,
``--loading.compile true``, ``--decoding.max_new_tokens 40``, or the whole group as YAML/JSON
(``--prompt '{"template": "base"}'``). The groups are frozen: a default instance can be shared safely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anygpt.modalities.registry import TokenizerRef

MUSIC_STARTS = ("start", "random")


@dataclass(frozen=True)
class LoadingOptions:
    """How a checkpoint is opened (the checkpoint itself and the device are given beside this group).

    Args:
        tokenizers: modality -> tokenizer checkpoint (a path, ``class_path=path``, or path + class_path + options),
            overriding the checkpoint's own.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt
            (their modules get imported). Off by default: opening a checkpoint never runs code it names.
        image_decoder: a local stable-diffusion-2-1-unclip folder turning SEED image embeddings into pixels
            (default: the checkpoint's anygpt.json ``image_decoder``).
        compile: ``torch.compile`` the one-token decode step (true/false); default: on CUDA only (on a CPU the
            compile time outweighs what it saves; docs/performance.md).
    """

    tokenizers: dict[str, str | TokenizerRef] | None = None
    trust_code: bool = False
    image_decoder: str | None = None
    compile: bool | None = None


@dataclass(frozen=True)
class PromptOptions:
    """How prompts are written: the template, the task prompt wrapping messages, and how media inputs are cut.

    Args:
        template: ``chat`` or ``base`` (default: what the checkpoint's anygpt.json records, else chat when it has the
            instruction tokens <-Ins->/<-Res->).
        task: the release task prompt wrapping each message: ``auto`` (by the requested output), ``none`` (as
            written), or one by name (text-to-image, text-to-speech, speech-instruction, ...); default: what the
            checkpoint records, else ``auto``.
        system_prompt: replaces the checkpoint's system prompt (chat template).
        force_marker: append the output modality's start marker (default: as the checkpoint records it).
        constrained: constrained decoding (on: every span valid; off: the release's unconstrained sampling).
        music_seconds: crop music input to this many seconds (default: 5 in chat, 20 for base, as the release).
        music_start: ``start`` or ``random`` (the release's loader picks a random window).
        instructions: the base template's instruction phrasings from a local copy of the release (its clone, its
            m_utils folder, or a JSON file of pools); default: anygpt's own.
    """

    template: str | None = None
    task: str | None = None
    system_prompt: str | None = None
    force_marker: bool | None = None
    constrained: bool = True
    music_seconds: float | None = None
    music_start: str = "start"
    instructions: str | None = None


@dataclass(frozen=True)
class DecodingOptions:
    """How replies are decoded: a preset family, overrides of it, and the sampling seed.

    Args:
        settings: decoding presets, ``release`` (the released configs) or ``paper`` (the paper's evaluation).
        max_new_tokens: overrides the preset's token budget.
        overrides: other overrides of the preset, e.g. ``{"top_p": 0.9, "num_beams": 1}``.
        seed: sampling seed.
    """

    settings: str = "release"
    max_new_tokens: int | None = None
    overrides: dict[str, Any] | None = None
    seed: int = 0

    def generation_overrides(self) -> dict[str, Any]:
        """The keyword overrides of `AnyGPT.generation_config` these options ask for."""
        extra = {"max_new_tokens": self.max_new_tokens} if self.max_new_tokens else {}
        return {**(self.overrides or {}), **extra}
