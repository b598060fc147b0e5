"""The options of talking to a model, defined once and shared by `AnyGPT`, ``anygpt chat``, ``anygpt generate`` and
``anygpt benchmark``: how a checkpoint is opened (`LoadingOptions`), how prompts are written (`PromptOptions`) and how
replies are decoded (`DecodingOptions`).

On a command line each group is a nested option (jsonargparse): ``--prompt.template chat``,
``--loading.compile true``, ``--decoding.max_new_tokens 40``, or the whole group as YAML/JSON
(``--prompt '{"template": "base"}'``). The groups are frozen: a default instance can be shared safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor

from anygpt.generation.processors import (
    LogitsProcessor,
    RepetitionPenalty,
    SuppressUntil,
    Temperature,
    TopK,
    TopP,
)
from anygpt.modalities.registry import TokenizerSpec

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
        adapter: a LoRA adapter folder (PEFT format, written by a LoRA fine-tune of this checkpoint) merged into the
            model on load (docs/finetune.md).
    """

    tokenizers: dict[str, TokenizerSpec] | None = None
    trust_code: bool = False
    image_decoder: str | None = None
    compile: bool | None = None
    adapter: str | None = None


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


# ----------------------------------------------------------------------------------------------------------------------
# Decoding settings: one config per output, the presets of REFERENCE.md
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationConfig:
    """How to decode. Field names and semantics follow HF's ``GenerationConfig``.

    ``stop_tokens`` are token strings resolved through a `UnifiedVocab` by `resolve` into ``stop_ids``.
    """

    max_new_tokens: int = 100
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool = False
    stop_ids: tuple[int, ...] = ()
    stop_tokens: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. SoundStorm steps, for the pipeline

    def resolve(self, vocab: Any) -> GenerationConfig:
        """Add the ids of ``stop_tokens`` (looked up in ``vocab``) to ``stop_ids``."""
        ids = tuple(dict.fromkeys([*self.stop_ids, *(vocab.token_id(t) for t in self.stop_tokens)]))
        return replace(self, stop_ids=ids, stop_tokens=())

    def processors(self, prompt_len: int, padding: Tensor | None = None) -> list[LogitsProcessor]:
        """HF's order: repetition penalty, min-new-tokens; then (sampling only) temperature, top-k, top-p.
        ``padding``: left-padding length per row (ignored by the repetition penalty)."""
        out: list[LogitsProcessor] = []
        if self.repetition_penalty != 1.0:
            out.append(RepetitionPenalty(self.repetition_penalty, padding))
        if self.min_new_tokens > 0 and self.stop_ids:
            out.append(SuppressUntil(self.stop_ids, self.min_new_tokens, prompt_len))
        return out

    def warpers(self) -> list[LogitsProcessor]:
        if not self.do_sample:
            return []
        out: list[LogitsProcessor] = []
        if self.temperature != 1.0:
            out.append(Temperature(self.temperature))
        if self.top_k is not None and self.top_k > 0:
            out.append(TopK(self.top_k))
        if self.top_p is not None and self.top_p < 1.0:
            out.append(TopP(self.top_p))
        return out


# Decoding settings of REFERENCE.md: "paper/<output>" = the paper's evaluation; "release/<...>" = the release's five
# config/*.json files, field for field: generate_config.json is what its chat CLI decodes text with ("chat-text": beam
# sampling, 5 beams), text_generate_config.json what its base CLI does ("text"); image/speech/music_generate_config.json
# serve both. SoundStorm runs generate_config.json's vc_steps (3) in both CLIs (speech_generate_config.json's 4 is read
# by neither). The release builds these configs without an eos id, so its decoding never stops before
# max_new_tokens and the reply is cut afterwards; we stop at <eos> (after min_new_tokens).
_EOS = ("<eos>",)


def _release(**fields: Any) -> GenerationConfig:
    """What every release config shares: sampling at temperature 1 and top_p 1, at least 10 new tokens."""
    return GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, min_new_tokens=10, stop_tokens=_EOS, **fields)


PRESETS: dict[str, GenerationConfig] = {
    "paper/text": GenerationConfig(num_beams=5, max_new_tokens=100, stop_tokens=_EOS),
    "paper/image": GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=200, stop_tokens=_EOS),
    "paper/speech": GenerationConfig(do_sample=True, top_p=0.7, max_new_tokens=1500, stop_tokens=_EOS),
    "paper/music": GenerationConfig(do_sample=True, top_p=1.0, repetition_penalty=1.15, max_new_tokens=2000,
                                    stop_tokens=_EOS),
    "release/chat-text": _release(num_beams=5, max_new_tokens=500, repetition_penalty=1.0,
                                  extra={"soundstorm_steps": 3}),
    "release/text": _release(max_new_tokens=100),
    "release/image": _release(max_new_tokens=200),
    "release/speech": _release(max_new_tokens=1500, repetition_penalty=1.05, extra={"soundstorm_steps": 3}),
    "release/music": _release(top_k=200, max_new_tokens=2000, repetition_penalty=1.15),
}


def preset(name: str, **overrides: Any) -> GenerationConfig:
    """A named preset (``"paper/image"``, ``"release/music"``, ...) with field overrides."""
    if name not in PRESETS:
        raise KeyError(f"Unknown generation preset {name!r}; presets: {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)
