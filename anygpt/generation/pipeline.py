"""Any-to-any inference: interleaved prompts -> token ids -> constrained generation -> decoded segments -> files.

    anygpt = AnyGPT.load("runs/demo/export")                      # or a .ckpt, or a released AnyGPT folder
    reply = anygpt.chat(["Describe this image.", Media("image", "cat.png")])
    reply.text, reply.segments[0].data                             # text and decoded media (image tensor, waveform)

Prompts are the strings the released models were trained on (`anygpt.prompts`: the chat template, the message
wrapped in the release's task prompt for the requested output, for instruction-tuned checkpoints; the pretraining
template for base ones), encoded in one pass as the release's tokenizer did. Appending the output modality's start
marker (`` <soim>``) is an option (on for checkpoints trained with anygpt's own templates, recorded in anygpt.json).
Constrained decoding (`ModalityConstraint`, on by default: the fix for the silent music of OpenMOSS/AnyGPT#38) makes
every generated span valid; a span that still ends early (token budget, Ctrl-C) is decoded as far as it is valid and
the segment says so in ``note``. Spoken-dialogue replies (``<-Ins-> transcript\\n <-Res-> answer <sosp>...``) come
back as ``Reply.transcript`` and the answer, markers removed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anygpt import prompts
from anygpt.checkpoints import Bundle, load_bundle
from anygpt.generation.checks import check_decoded
from anygpt.generation.constrained import ModalityConstraint
from anygpt.generation.options import MUSIC_STARTS, PRESETS, GenerationConfig, LoadingOptions, PromptOptions, preset
from anygpt.generation.sampling import generate
from anygpt.modalities.codec import Modality
from anygpt.modalities.registry import media_pattern, media_words
from anygpt.vocab import Segment

# Music input is cropped before tokenizing, as the release's CLIs do: a 5 s window in chat, 20 s for the base model.
MUSIC_WINDOW_SECONDS = {"chat": 5.0, "base": 20.0}

Progress = Callable[[str, int, int], bool | None]
"""``progress(stage, done, total)``: stage ``"tokenizing"`` (0, media items), ``"generating"`` (new tokens so far,
token budget) or ``"decoding"`` (media spans so far, spans). A true return while generating stops generation; the
reply keeps what was produced (``interrupted``), as Ctrl-C does."""


@dataclass
class Media:
    """A media item in a prompt: a file path (or an already loaded tensor) of one modality."""

    modality: str
    source: str | Path | torch.Tensor

    @property
    def label(self) -> str:
        return str(self.source) if not isinstance(self.source, torch.Tensor) else f"<{self.modality} tensor>"


Part = str | Media


def parse_message(message: str) -> list[Part]:
    """Text with AnyInstruct-style placeholders of the registered modalities (``[image: cat.png]``,
    ``[speech: q.wav]``, a plugin's ``[depth: scan.npy]``) -> prompt parts."""
    parts: list[Part] = []
    last = 0
    words = media_words()
    for match in media_pattern().finditer(message):
        if match.start() > last:
            parts.append(message[last: match.start()])
        parts.append(Media(words[match.group(1)], match.group(2).strip()))
        last = match.end()
    if last < len(message):
        parts.append(message[last:])
    return parts


@dataclass
class OutputSegment:
    """A decoded piece of a reply: text, or a media item (``data``: image tensor or waveform) with its codes."""

    modality: str
    text: str = ""
    data: torch.Tensor | None = None
    codes: torch.Tensor | None = None
    note: str | None = None  # set when a span was malformed and decoded only partly (or not at all)
    path: Path | None = None  # where `Reply.save` wrote it


@dataclass
class Reply:
    """``transcript``: what a spoken-dialogue reply says the user said (its ``<-Ins->`` part), else None."""

    segments: list[OutputSegment]
    ids: list[int]
    interrupted: bool = False
    transcript: str | None = None
    prompt_tokens: int = 0  # the prompt's length in tokens (usage reports)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments if s.modality == "text").strip()

    def media(self, modality: str | None = None) -> list[OutputSegment]:
        return [s for s in self.segments if s.modality != "text" and (modality is None or s.modality == modality)]

    def save(self, folder: str | Path, stem: str, tokenizers: Mapping[str, Modality]) -> list[Path]:
        """Write every decoded media segment as ``{stem}-{i}{suffix}`` in ``folder``, with its modality's media
        writer and suffix (``.png``, ``.wav``, ``.npy``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for i, seg in enumerate(self.media()):
            if seg.data is None:
                continue
            modality = tokenizers[seg.modality]
            seg.path = modality.write(seg.data, folder / f"{stem}-{i}{modality.media.suffix}")
            written.append(seg.path)
        return written


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    parts: list[Part] | None = None  # user turns
    reply: Reply | None = None  # assistant turns
    text: str = ""  # the turn as the chat template writes it (media spelled out as token strings)


class AnyGPT:
    """The decoder, its vocabulary and the modality tokenizers, prompted the way the released models were trained.

    Args:
        bundle: the loaded checkpoint (`load_bundle`; `AnyGPT.load` opens one).
        prompt: how prompts are written (`PromptOptions`); each unset field takes what the checkpoint records
            (anygpt.json ``template``, ``task``, ``force_marker``, system prompt), else the release's behaviour: chat
            template when the vocabulary has the instruction tokens, the release task prompts, no forced marker.
        device: where the model runs.
        compile: ``torch.compile`` the decode step; None: on CUDA only (see decoder.compile_by_default).
    """

    def __init__(self, bundle: Bundle, prompt: PromptOptions = PromptOptions(), device: str | torch.device = "cpu",
                 compile: bool | None = None) -> None:
        self.bundle = bundle
        self.compile = compile
        self.model, self.vocab, self.tokenizers = bundle.model, bundle.vocab, bundle.tokenizers
        self.system_prompt = prompt.system_prompt if prompt.system_prompt is not None else bundle.system_prompt
        self.device = torch.device(device)
        template = prompt.template or bundle.template or ("chat" if self.vocab.instruction_tokens else "base")
        if template not in prompts.TEMPLATES:
            raise ValueError(f"template must be one of {prompts.TEMPLATES}, got {template!r}")
        if prompt.music_start not in MUSIC_STARTS:
            raise ValueError(f"music_start must be one of {MUSIC_STARTS}, got {prompt.music_start!r}")
        if prompt.task is not None and prompt.task not in prompts.TASKS:
            raise ValueError(f"unknown task prompt {prompt.task!r}; choose one of {', '.join(prompts.TASKS)}")
        self.template = template
        # The task prompt wrapping chat messages: the release's task prompts ("auto") unless the checkpoint records
        # another default (our exports: "none", messages as written, the way their chat data was rendered).
        self.task = prompt.task or bundle.task or "auto"
        self.force_marker = bundle.force_marker if prompt.force_marker is None else prompt.force_marker
        self.constrained = prompt.constrained
        self.music_seconds = MUSIC_WINDOW_SECONDS[template] if prompt.music_seconds is None else prompt.music_seconds
        self.music_start = prompt.music_start
        self.instructions = (prompts.load_instructions(prompt.instructions) if prompt.instructions
                             else prompts.InstructionPools())
        self.history: list[Turn] = []

    @classmethod
    def load(cls, path: str | Path, loading: LoadingOptions = LoadingOptions(), prompt: PromptOptions = PromptOptions(),
             device: str = "cpu") -> AnyGPT:
        """`load_bundle` as ``loading`` says (tokenizer overrides, trusted code, image decoder, LoRA adapter) + the
        prompt format."""
        bundle = load_bundle(path, loading.tokenizers, device=device, trust_code=loading.trust_code,
                             image_decoder=loading.image_decoder, adapter=loading.adapter)
        return cls(bundle, prompt, device, compile=loading.compile)

    def describe(self) -> str:
        """How this session prompts and decodes (for transcripts and reports)."""
        marker = "start marker forced" if self.force_marker else "no forced start marker"
        return (f"template {self.template}, {marker}, constrained decoding {'on' if self.constrained else 'off'}, "
                f"music input cropped to {self.music_seconds:g} s from the {self.music_start}")

    # -- prompts -------------------------------------------------------------------------------------------------------
    def encode_media(self, items: Sequence[Media], generator: torch.Generator | None = None) -> list[list[int]]:
        """Media -> unified ids with markers, one tokenizer call per modality (music cropped as configured)."""
        out: list[list[int] | None] = [None] * len(items)
        by_modality: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            if item.modality not in self.tokenizers:
                raise ValueError(f"{item.label}: no {item.modality!r} tokenizer; this model knows "
                                 f"{list(self.tokenizers)}")
            by_modality.setdefault(item.modality, []).append(i)
        for modality, indices in by_modality.items():
            tok = self.tokenizers[modality]
            loaded = []
            for i in indices:
                data = items[i].source
                if not isinstance(data, torch.Tensor):
                    if not Path(data).is_file():
                        raise FileNotFoundError(f"{modality} input {data} does not exist")
                    data = tok.read(data)  # MediaError (a ValueError) names the file
                    if modality == "music":
                        data = self.crop_music(data, tok.codec.sample_rate, generator)
                loaded.append(data.to(self.device))
            codes = tok.codec.encode(loaded)
            for i, c in zip(indices, codes, strict=True):
                out[i] = self.vocab.encode_codes(modality, tok.codec.flatten(c.cpu()))
        return out  # type: ignore[return-value]

    def crop_music(self, wav: torch.Tensor, sample_rate: int | None, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
        """The window of music the model hears (``music_seconds`` from the start, or from a random start)."""
        if sample_rate is None or self.music_seconds <= 0:
            return wav
        window = int(self.music_seconds * sample_rate)
        total = wav.shape[-1]
        start = 0
        if self.music_start == "random" and total > window:
            start = int(torch.randint(0, total - window + 1, (1,), generator=generator))
        return wav[..., start: start + window]

    def _spell(self, ids: Sequence[int]) -> str:
        return "".join(self.vocab.id_to_token(i) for i in ids)

    def _split(self, parts: Sequence[Part], generator: torch.Generator | None = None
               ) -> tuple[list[str | prompts.MediaSpan], list[prompts.MediaSpan], str]:
        """Parts -> (parts with media spelled out, the media spans, the text with whitespace runs of the joins
        collapsed)."""
        media = [p for p in parts if isinstance(p, Media)]
        spans = [prompts.MediaSpan(m.modality, self._spell(ids)) for m, ids in
                 zip(media, self.encode_media(media, generator), strict=True)]
        it = iter(spans)
        spelled = [next(it) if isinstance(p, Media) else p for p in parts]
        text = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        return spelled, spans, text

    def user_message(self, parts: Sequence[Part], output: str = "text", task: str | None = None,
                     generator: torch.Generator | None = None) -> str:
        """The chat message for ``parts``: wrapped in the release task prompt for ``output`` (``task="auto"``), a
        named one, or as written (``none``); None: the checkpoint's default (`AnyGPT.task`)."""
        task = task or self.task
        spelled, spans, text = self._split(parts, generator)
        if task == "none":
            return "".join(p.text if isinstance(p, prompts.MediaSpan) else p for p in spelled).strip()
        chosen = prompts.pick_task(output, text, spans) if task == "auto" else task
        return prompts.task_message(chosen, text, spans)

    def prompt_text(self, parts: Sequence[Part], output: str = "text", history: Sequence[Turn] = (),
                    force: str | None = None, task: str | None = None, template: str | None = None,
                    generator: torch.Generator | None = None, rng: Any = None, message: str | None = None) -> str:
        """The whole prompt string (media spelled out as token strings); ``force`` appends that modality's start
        marker, as the release's ``force_*_generation`` does. ``message``: the chat message if already built."""
        template = template or self.template
        if template == "chat":
            turns = [(u.text, a.text) for u, a in zip(history[::2], history[1::2], strict=False)]
            if message is None:
                message = self.user_message(parts, output, task, generator)
            text = prompts.chat_prompt(self.system_prompt, turns, message)
        elif template == "base":
            text = self.base_prompt_text(parts, output, generator, rng)
        else:
            raise ValueError(f"template must be one of {prompts.TEMPLATES}, got {template!r}")
        if force is not None:
            if force not in self.vocab.modalities:
                raise ValueError(f"cannot force output modality {force!r}; the model has {list(self.vocab.modalities)}")
            text += " " + self.vocab.modalities[force].spec.markers[0]
        return text

    def base_prompt_text(self, parts: Sequence[Part], output: str, generator: torch.Generator | None = None,
                         rng: Any = None) -> str:
        """The pretraining template: media -> text with the user's text (or a drawn instruction), or text -> media
        with a drawn instruction. ``rng``: a `random.Random` for the draw (seeded from ``generator`` if None)."""
        _, spans, text = self._split(parts, generator)
        if rng is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
            rng = random.Random(seed)
        if spans:
            if len(spans) > 1:
                raise ValueError("the base template takes one media item per prompt; use the chat template for more "
                                 "(--prompt.template chat)")
            instruction = text or self.instructions.draw("x2text", spans[0].modality, rng)
            return prompts.base_prompt(instruction, "x2text", spans[0].text)
        if output == "text":
            return f"{prompts.USER}: {text}{prompts.USER_END} {prompts.BOT}:"
        return prompts.base_prompt(self.instructions.draw("text2x", output, rng), "text2x", text)

    def pair_prompt_text(self, instruction: str, parts: Sequence[Part], direction: str,
                         force: str | None = None) -> str:
        """The pretraining template with a given instruction (the benchmarks' prompts): ``parts`` hold the one media
        item (``x2text``) or the text (``text2x``); ``force`` appends that modality's start marker."""
        _, spans, text = self._split(parts)
        if direction == "x2text" and len(spans) != 1:
            raise ValueError(f"an x2text prompt takes exactly one media item, got {len(spans)}")
        text = prompts.base_prompt(instruction, direction, spans[0].text if direction == "x2text" else text)
        return text + (" " + self.vocab.modalities[force].spec.markers[0] if force is not None else "")

    def encode_prompt(self, text: str) -> list[int]:
        """A prompt string -> ids: BOS, then the whole string in one pass (as the release's tokenizer call)."""
        bos = self.vocab.text.bos_id
        return ([bos] if bos is not None else []) + self.vocab.encode(text)

    def prompt_ids(self, parts: Sequence[Part], history: Sequence[Turn] = (), force: str | None = None,
                   output: str | None = None, task: str | None = None, template: str | None = None,
                   generator: torch.Generator | None = None) -> list[int]:
        """`prompt_text` encoded; ``output`` defaults to ``force`` (or text)."""
        output = output or force or "text"
        return self.encode_prompt(self.prompt_text(parts, output, history, force, task, template, generator))

    def forced(self, output: str) -> str | None:
        """The marker to force for ``output`` under this session's settings."""
        return output if self.force_marker and output != "text" else None

    # -- generation ----------------------------------------------------------------------------------------------------
    def generation_config(self, output: str, settings: str = "paper", template: str | None = None,
                          **overrides: Any) -> GenerationConfig:
        """The preset for an output modality (``paper``: the paper's evaluation; ``release``: the released configs,
        whose chat model decodes text with ``release/chat-text``).

        A modality with no preset of its own (a plugin's) samples like the image preset of ``settings``; ``overrides``
        change any field."""
        name = f"{settings}/{output}"
        if settings == "release" and output == "text" and (template or self.template) == "chat":
            name = "release/chat-text"
        if name not in PRESETS and output in self.tokenizers:
            name = f"{settings}/image"
        return preset(name, **overrides).resolve(self.vocab)

    @torch.inference_mode()
    def generate_ids(self, prompts: Sequence[Sequence[int]], config: GenerationConfig,
                     generator: torch.Generator | None = None,
                     on_step: Callable[[int], bool | None] | None = None,
                     on_token: Callable[[torch.Tensor], None] | None = None) -> tuple[list[list[int]], bool]:
        """New ids per prompt (stop id removed) and whether generation was interrupted (Ctrl-C, ``on_step``);
        ``on_token`` sees each step's ids as they are sampled (see `generate`)."""
        processors = []
        if self.constrained:
            structures = {name: tok.structure for name, tok in self.tokenizers.items()}
            processors.append(ModalityConstraint(self.vocab, structures))
        result = generate(self.model, [list(p) for p in prompts], config, processors=processors,
                          generator=generator, pad_id=self.pad_id, compile=self.compile, on_step=on_step,
                          on_token=on_token)
        new = result.new_tokens()
        stops = set(config.stop_ids)
        return [row[:-1] if row and row[-1] in stops else row for row in new], result.interrupted

    @property
    def pad_id(self) -> int:
        return self.vocab.text.eos_id if self.vocab.text.eos_id is not None else 0

    def split_transcript(self, ids: Sequence[int]) -> tuple[str | None, list[int]]:
        """A spoken-dialogue reply ``<-Ins-> transcript\\n <-Res-> answer`` -> (transcript, the answer's ids)."""
        if not self.vocab.instruction_tokens:
            return None, list(ids)
        ins, res = self.vocab.token_id("<-Ins->"), self.vocab.token_id("<-Res->")
        ids = list(ids)
        if ins not in ids:
            return None, [i for i in ids if i != res]
        start = ids.index(ins)
        end = ids.index(res, start) if res in ids[start:] else len(ids)
        transcript = self.decode_text(ids[start + 1: end])
        return transcript, ids[:start] + [i for i in ids[end:] if i not in (ins, res)]

    def decode(self, ids: Sequence[int], voice: str | Path | torch.Tensor | None = None,
               steps: int | None = None, progress: Progress | None = None,
               seed: int | None = None) -> list[OutputSegment]:
        """Ids -> segments; each media span is decoded by its tokenizer as far as it is valid. ``voice`` (a speech
        file or waveform) and ``steps`` (SoundStorm's) go to every codec's decode as context: the speech codec clones
        the voice, others ignore them. ``seed`` fixes the random draws of a sampling decoder (SoundStorm), so the same
        ids decode to the same waveform in every run; None draws from torch's global generator. ``progress`` sees each
        span start (stage ``"decoding"``)."""
        segments = self.vocab.segments(ids)
        spans = sum(seg.modality != "text" for seg in segments)
        out: list[OutputSegment] = []
        for seg in segments:
            if seg.modality == "text":
                out.append(OutputSegment("text", text=_clean_text(seg.text)))
                continue
            if progress is not None:
                progress("decoding", sum(o.modality != "text" for o in out), spans)
            out.append(self.decode_span(seg, voice, steps, seed))
        return out

    def decode_text(self, ids: Sequence[int]) -> str:
        """Only the text of ``ids`` (media spans skipped, nothing decoded): what `Reply.text` holds, cheaply."""
        return "".join(_clean_text(s.text) for s in self.vocab.segments(ids) if s.modality == "text").strip()

    def decode_span(self, seg: Segment, voice: Any, steps: int | None = None,
                    seed: int | None = None) -> OutputSegment:
        """One media span -> its decoded data, as far as its codes are valid (a note says when that is not all)."""
        tok = self.tokenizers[seg.modality]
        codes = seg.codes if seg.codes is not None else torch.zeros(0, dtype=torch.long)
        valid = tok.structure.valid_prefix(codes, tok.codebook_size)
        note = None
        if valid < codes.numel() or not seg.closed:
            note = (f"malformed {seg.modality} span ({codes.numel()} codes, "
                    f"{'closed' if seg.closed else 'not closed'}): decoded the first {valid} valid codes")
        if valid == 0:
            return OutputSegment(seg.modality, codes=codes, note=note or f"empty {seg.modality} span")
        if getattr(tok.codec, "unclip", False) is None:  # SEED without its second stage: say what to pass
            missing = ("no image decoder: pass --loading.image_decoder PATH (a local stable-diffusion-2-1-unclip "
                       "folder; also in anygpt serve) or set image_decoder in anygpt.json to get pixels")
            return OutputSegment(seg.modality, codes=codes[:valid], note="; ".join(filter(None, [note, missing])))
        native = tok.codec.unflatten(codes[:valid]).to(self.device)
        context: dict[str, Any] = {"voice": voice} if steps is None else {"voice": voice, "steps": steps}
        if seed is not None:
            context["generator"] = torch.Generator(getattr(tok.codec, "device", "cpu")).manual_seed(seed)
        data = check_decoded(tok.codec, tok.media, tok.codec.decode([native], **context), 1)[0].cpu()
        return OutputSegment(seg.modality, data=data, codes=codes[:valid], note=note)

    def reply(self, ids: list[int], interrupted: bool, voice: Any, config: GenerationConfig,
              progress: Progress | None = None, generator: torch.Generator | None = None) -> Reply:
        """Split and decode generated ids; with ``generator``, a sampling decoder's seed is drawn from it, so a seeded
        conversation decodes its speech alike in every run."""
        transcript, answer = self.split_transcript(ids)
        seed = None if generator is None else \
            int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        segments = self.decode(answer, voice, config.extra.get("soundstorm_steps"), progress, seed=seed)
        return Reply(segments, ids, interrupted, transcript)

    def respond(self, prompts: Sequence[Sequence[Part]], output: str = "text", settings: str = "paper",
                generator: torch.Generator | None = None, voice: Any = None, task: str | None = None,
                **overrides: Any) -> list[Reply]:
        """One-shot replies to a batch of prompts (no history)."""
        force = self.forced(output)
        prompt_ids = [self.prompt_ids(p, force=force, output=output, task=task, generator=generator)
                      for p in prompts]
        config = self.generation_config(output, settings, **overrides)
        new, interrupted = self.generate_ids(prompt_ids, config, generator)
        replies = []
        for row in new:
            ids = ([self.vocab.modalities[force].start_id] + row) if force else row
            replies.append(self.reply(ids, interrupted, voice, config, generator=generator))
        return replies

    def chat(self, parts: Sequence[Part] | str, output: str = "text", settings: str = "release",
             generator: torch.Generator | None = None, voice: Any = None, task: str | None = None,
             progress: Progress | None = None, on_token: Callable[[int], None] | None = None,
             **overrides: Any) -> Reply:
        """One turn of a conversation that keeps its history (``reset`` clears it; the base template keeps none);
        ``progress`` sees each stage (see `Progress`), ``on_token`` each new id as it is sampled (streaming).

        A reply cut inside a media span (token budget, a stop) enters the history with that span closed: an open span
        would make the next turn's prompt continue it."""
        if isinstance(parts, str):
            parts = parse_message(parts)
        if progress is not None:
            progress("tokenizing", 0, sum(isinstance(p, Media) for p in parts))
        force = self.forced(output)
        codec = self.tokenizers[output].codec if output in self.tokenizers else None
        if not getattr(codec, "loaded", True):  # a release tokenizer by hub id (`LazyCodec`): fetched before generating
            codec.load()
        history = self.history if self.template == "chat" else ()
        message = self.user_message(parts, output, task, generator) if self.template == "chat" else None
        text = self.prompt_text(parts, output, history, force, task, generator=generator, message=message)
        config = self.generation_config(output, settings, **overrides)
        on_step = None if progress is None else (lambda n: progress("generating", n, config.max_new_tokens))
        streamed = None if on_token is None else (lambda nxt: on_token(int(nxt[0])))
        prompt = self.encode_prompt(text)
        (row,), interrupted = self.generate_ids([prompt], config, generator, on_step, streamed)
        ids = ([self.vocab.modalities[force].start_id] + row) if force else row
        reply = self.reply(ids, interrupted, voice, config, progress, generator)
        reply.prompt_tokens = len(prompt)
        if self.template == "chat":
            self.history.append(Turn("user", parts=list(parts), text=message or ""))
            self.history.append(Turn("assistant", reply=reply, text=self.vocab.decode_text(self._closed(ids)).strip()))
        return reply

    def reset(self) -> None:
        self.history.clear()

    def _closed(self, ids: list[int]) -> list[int]:
        """``ids`` with a trailing media span that was cut (no end marker) closed by its end marker."""
        segments = self.vocab.segments(ids)
        if segments and segments[-1].modality != "text" and not segments[-1].closed:
            return [*ids, self.vocab.modalities[segments[-1].modality].end_id]
        return ids


def _clean_text(text: str) -> str:
    """Drop the template's role tokens and the spoken-dialogue markers from generated text (never shown to users)."""
    for token in ("[MMGPT]:", "[Human]:", "<eoh>", "<eos>", "<-Ins->", "<-Res->"):
        text = text.replace(token, "")
    return text
