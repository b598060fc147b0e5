"""Any-to-any inference: interleaved prompts -> token ids -> constrained generation -> decoded segments -> files.

    anygpt = AnyGPT.load("runs/demo/export")                      # or a .ckpt, or a released AnyGPT folder
    reply = anygpt.chat(["Describe this image.", Media("image", "cat.png")])
    reply.text, reply.segments[0].data                             # text and decoded media (image tensor, waveform)

Prompts follow the release's chat template (``{system}\\n[Human]: {message}<eoh>\\n[MMGPT]:``); asking for an output
modality appends its start marker, as the release does (`` <soim>``, `` <sosp>``, `` <somu>``). Constrained decoding
(`ModalityConstraint`) makes every generated span valid; a span that still ends early (token budget, Ctrl-C) is decoded
as far as it is valid and the segment says so in ``note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from anygpt.checkpoints import Bundle, load_bundle
from anygpt.generation.constrained import ModalityConstraint
from anygpt.generation.sampling import PRESETS, GenerationConfig, generate, preset
from anygpt.modalities.base import Modality
from anygpt.modalities.registry import TokenizerRef, media_pattern, media_words
from anygpt.vocab import Segment

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
    segments: list[OutputSegment]
    ids: list[int]
    interrupted: bool = False

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
    ids: list[int] = field(default_factory=list)


class AnyGPT:
    """The decoder, its vocabulary and the modality tokenizers, with the release's prompt format."""

    def __init__(self, bundle: Bundle, system_prompt: str | None = None, device: str | torch.device = "cpu") -> None:
        self.bundle = bundle
        self.model, self.vocab, self.tokenizers = bundle.model, bundle.vocab, bundle.tokenizers
        self.system_prompt = system_prompt if system_prompt is not None else bundle.system_prompt
        self.device = torch.device(device)
        self.history: list[Turn] = []

    @classmethod
    def load(cls, path: str | Path, tokenizers: Mapping[str, str | TokenizerRef | Modality] | None = None,
             device: str = "cpu", system_prompt: str | None = None, trust_code: bool = False) -> AnyGPT:
        """`load_bundle` + the chat template; ``trust_code`` lets the checkpoint name unregistered tokenizer classes."""
        return cls(load_bundle(path, tokenizers, device=device, trust_code=trust_code), system_prompt, device)

    # -- prompts -------------------------------------------------------------------------------------------------------
    def encode_media(self, items: Sequence[Media]) -> list[list[int]]:
        """Media -> unified ids with markers, one tokenizer call per modality."""
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
                source = items[i].source
                if isinstance(source, torch.Tensor):
                    loaded.append(source.to(self.device))
                    continue
                if not Path(source).is_file():
                    raise FileNotFoundError(f"{modality} input {source} does not exist")
                loaded.append(tok.read(source).to(self.device))  # MediaError (a ValueError) names the file
            codes = tok.codec.encode(loaded)
            for i, c in zip(indices, codes, strict=True):
                out[i] = self.vocab.encode_codes(modality, tok.codec.flatten(c.cpu()))
        return out  # type: ignore[return-value]

    def encode_parts(self, parts: Sequence[Part]) -> list[int]:
        media = [p for p in parts if isinstance(p, Media)]
        media_ids = iter(self.encode_media(media))
        ids: list[int] = []
        for part in parts:
            ids += next(media_ids) if isinstance(part, Media) else self.vocab.encode(part)
        return ids

    def prompt_ids(self, parts: Sequence[Part], history: Sequence[Turn] = (), force: str | None = None) -> list[int]:
        """The chat template around ``parts``, after ``history``; ``force`` appends an output modality's marker."""
        v = self.vocab
        ids: list[int] = []
        bos = v.text.bos_id
        if bos is not None:
            ids.append(bos)
        if self.system_prompt:
            ids += v.encode(self.system_prompt + "\n")
        for turn in history:
            ids += turn.ids
        ids += v.encode("[Human]: ") + self.encode_parts(parts) + v.encode("<eoh>\n[MMGPT]:")
        if force is not None:
            if force not in v.modalities:
                raise ValueError(f"cannot force output modality {force!r}; the model has {list(v.modalities)}")
            ids += v.encode(" ") + [v.modalities[force].start_id]
        return ids

    # -- generation ----------------------------------------------------------------------------------------------------
    def generation_config(self, output: str, settings: str = "paper", **overrides: Any) -> GenerationConfig:
        """The preset for an output modality (``paper``: the paper's evaluation; ``release``: the released configs).

        A modality with no preset of its own (a plugin's) samples like the image preset of ``settings``; ``overrides``
        change any field."""
        name = f"{settings}/{output}"
        if name not in PRESETS and output in self.tokenizers:
            name = f"{settings}/image"
        return preset(name, **overrides).resolve(self.vocab)

    @torch.inference_mode()
    def generate_ids(self, prompts: Sequence[Sequence[int]], config: GenerationConfig,
                     generator: torch.Generator | None = None,
                     on_step: Callable[[int], bool | None] | None = None) -> tuple[list[list[int]], bool]:
        """New ids per prompt (stop id removed) and whether generation was interrupted (Ctrl-C, ``on_step``)."""
        structures = {name: tok.structure for name, tok in self.tokenizers.items()}
        constraint = ModalityConstraint(self.vocab, structures)
        result = generate(self.model, [list(p) for p in prompts], config, processors=[constraint],
                          generator=generator, pad_id=self.pad_id, on_step=on_step)
        new = result.new_tokens()
        stops = set(config.stop_ids)
        return [row[:-1] if row and row[-1] in stops else row for row in new], result.interrupted

    @property
    def pad_id(self) -> int:
        return self.vocab.text.eos_id if self.vocab.text.eos_id is not None else 0

    def decode(self, ids: Sequence[int], voice: str | Path | torch.Tensor | None = None,
               progress: Progress | None = None) -> list[OutputSegment]:
        """Ids -> segments; each media span is decoded by its tokenizer as far as it is valid. ``voice`` (a speech
        file or waveform) goes to every codec's decode as context: the speech codec clones it, others ignore it."""
        segments = self.vocab.segments(ids)
        spans = sum(seg.modality != "text" for seg in segments)
        out: list[OutputSegment] = []
        for seg in segments:
            if seg.modality == "text":
                out.append(OutputSegment("text", text=_clean_text(seg.text)))
                continue
            if progress is not None:
                progress("decoding", sum(o.modality != "text" for o in out), spans)
            out.append(self._decode_span(seg, voice))
        return out

    def decode_text(self, ids: Sequence[int]) -> str:
        """Only the text of ``ids`` (media spans skipped, nothing decoded): what `Reply.text` holds, cheaply."""
        return "".join(_clean_text(s.text) for s in self.vocab.segments(ids) if s.modality == "text").strip()

    def _decode_span(self, seg: Segment, voice: Any) -> OutputSegment:
        tok = self.tokenizers[seg.modality]
        codes = seg.codes if seg.codes is not None else torch.zeros(0, dtype=torch.long)
        valid = tok.structure.valid_prefix(codes, tok.codebook_size)
        note = None
        if valid < codes.numel() or not seg.closed:
            note = (f"malformed {seg.modality} span ({codes.numel()} codes, "
                    f"{'closed' if seg.closed else 'not closed'}): decoded the first {valid} valid codes")
        if valid == 0:
            return OutputSegment(seg.modality, codes=codes, note=note or f"empty {seg.modality} span")
        native = tok.codec.unflatten(codes[:valid]).to(self.device)
        data = tok.codec.decode([native], voice=voice)[0].cpu()
        return OutputSegment(seg.modality, data=data, codes=codes[:valid], note=note)

    def respond(self, prompts: Sequence[Sequence[Part]], output: str = "text", settings: str = "paper",
                generator: torch.Generator | None = None, voice: Any = None, **overrides: Any) -> list[Reply]:
        """One-shot replies to a batch of prompts (no history), forcing ``output`` unless it is "text"."""
        force = None if output == "text" else output
        prompt_ids = [self.prompt_ids(p, force=force) for p in prompts]
        config = self.generation_config(output, settings, **overrides)
        new, interrupted = self.generate_ids(prompt_ids, config, generator)
        replies = []
        for row in new:
            ids = ([self.vocab.modalities[force].start_id] + row) if force else row
            replies.append(Reply(self.decode(ids, voice), ids, interrupted))
        return replies

    def chat(self, parts: Sequence[Part] | str, output: str = "text", settings: str = "release",
             generator: torch.Generator | None = None, voice: Any = None, progress: Progress | None = None,
             **overrides: Any) -> Reply:
        """One turn of a conversation that keeps its history (``reset`` clears it); ``progress`` sees each stage."""
        if isinstance(parts, str):
            parts = parse_message(parts)
        force = None if output == "text" else output
        config = self.generation_config(output, settings, **overrides)
        if progress is not None:
            progress("tokenizing", 0, sum(isinstance(p, Media) for p in parts))
        prompt = self.prompt_ids(parts, self.history, force)
        on_step = None if progress is None else (lambda n: progress("generating", n, config.max_new_tokens))
        (row,), interrupted = self.generate_ids([prompt], config, generator, on_step)
        ids = ([self.vocab.modalities[force].start_id] + row) if force else row
        reply = Reply(self.decode(ids, voice, progress), ids, interrupted)
        user_ids = self.vocab.encode("[Human]: ") + self.encode_parts(parts) + self.vocab.encode("<eoh>\n[MMGPT]:")
        self.history.append(Turn("user", parts=list(parts), ids=user_ids))
        self.history.append(Turn("assistant", reply=reply, ids=self.vocab.encode(" ") + ids +
                                 self.vocab.encode("<eos>\n")))
        return reply

    def reset(self) -> None:
        self.history.clear()


def _clean_text(text: str) -> str:
    """Drop the template's role tokens from generated text (a model may echo them)."""
    for token in ("[MMGPT]:", "[Human]:", "<eoh>", "<eos>"):
        text = text.replace(token, "")
    return text
