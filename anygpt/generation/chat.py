"""``anygpt chat`` (interactive, with history) and ``anygpt generate`` (one shot): files in, files out, HTML transcript.

Messages are text with media placeholders, as in AnyInstruct: ``Describe this [image: photos/cat.png]``. Start a
message with ``/`` and a modality of the model (``/image``, ``/speech``, ``/music``, a plugin's ``/depth``) to ask for
that output modality, ``/text`` for text: the message is wrapped in the release's task prompt for it (``--task``), and
the modality's start marker is appended only where the checkpoint (or ``--force_marker``) asks for it; ``/reset``
clears the history, ``/quit`` (or end of input) leaves. Ctrl-C during generation keeps what was produced so far. A
spoken-dialogue reply shows what the model heard and its answer apart.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

import torch

from anygpt.generation.pipeline import AnyGPT, Media, Part, Reply, parse_message
from anygpt.htmlpage import HtmlPage
from anygpt.media import MediaKind
from anygpt.modalities.registry import TokenizerRef, media_kind_of


def output_commands(modalities: Iterable[str]) -> dict[str, str]:
    """Slash command -> output modality: ``/text`` and one per modality of the model."""
    return {"/text": "text", **{f"/{name}": name for name in modalities}}


class Transcript:
    """Turns of a session, rendered to ``transcript.html`` with inputs copied next to it.

    Args:
        kinds: modality -> media kind of its files (how the page shows them); registered kinds by default.
    """

    def __init__(self, folder: Path, title: str, kinds: Mapping[str, MediaKind] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.kinds = dict(kinds or {})
        self.page_title = title
        self.turns: list[tuple[str, str, str | None]] = []  # role, html body, note
        self.notes: list[str] = []

    def _copy_input(self, media: Media) -> Path | None:
        if isinstance(media.source, torch.Tensor):
            return None
        src = Path(media.source)
        dst = self.folder / "inputs" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        return dst

    def note(self, text: str) -> None:
        """A line about the session (settings used), shown at the top of the transcript."""
        self.notes.append(text)

    def _kind(self, modality: str) -> MediaKind:
        return self.kinds[modality] if modality in self.kinds else media_kind_of(modality)

    def add_user(self, parts: list[Part], output: str, note: str | None = None) -> None:
        """A user turn; ``note``: how it was answered (choices made for this turn alone), beside the output asked."""
        body = []
        for part in parts:
            if isinstance(part, Media):
                copied = self._copy_input(part)
                body.append(HtmlPage.media(copied, self._kind(part.modality), self.folder) if copied else
                            HtmlPage.text(part.label))
            else:
                body.append(HtmlPage.text(part))
        notes = [f"asked for {output} output"] if output != "text" else []
        self.turns.append(("User", " ".join(body), "; ".join(notes + [note] * bool(note)) or None))

    def add_reply(self, reply: Reply) -> None:
        body = []
        notes = [s.note for s in reply.segments if s.note]
        if reply.transcript is not None:
            body.append(HtmlPage.text(f"(heard: {reply.transcript})"))
        for seg in reply.segments:
            if seg.modality == "text":
                body.append(HtmlPage.text(seg.text))
            elif seg.path is not None:
                body.append(HtmlPage.media(seg.path, self._kind(seg.modality), self.folder))
        if reply.interrupted:
            notes.append("interrupted (Ctrl-C): partial output kept")
        self.turns.append(("AnyGPT", " ".join(body) or "<i>(empty reply)</i>", "; ".join(notes) or None))

    def write(self) -> Path:
        page = HtmlPage(self.page_title)
        for note in self.notes:
            page.raw(f'<div class="note">{HtmlPage.text(note)}</div>')
        for role, body, note in self.turns:
            page.turn(role, body, note)
        return page.write(self.folder / "transcript.html")


def _split_command(message: str, commands: Mapping[str, str]) -> tuple[str, str]:
    head, _, rest = message.strip().partition(" ")
    if head in commands:
        return commands[head], rest
    return "text", message.strip()


def _describe(reply: Reply) -> str:
    lines = [f"(heard: {reply.transcript})"] if reply.transcript is not None else []
    for seg in reply.segments:
        if seg.modality == "text":
            if seg.text.strip():
                lines.append(seg.text.strip())
        else:
            where = seg.path or "(not decoded)"
            lines.append(f"[{seg.modality}: {where}]" + (f"  ({seg.note})" if seg.note else ""))
    if reply.interrupted:
        lines.append("(interrupted: partial output kept)")
    return "\n".join(lines) or "(empty reply)"


def _session(ckpt: str, tokenizers: dict[str, str | TokenizerRef] | None, device: str, system_prompt: str | None,
             trust_code: bool, template: str | None, force_marker: bool | None, constrained: bool,
             music_seconds: float | None, music_start: str, instructions: str | None,
             image_decoder: str | None, compile: bool | None = None) -> AnyGPT:
    from anygpt.generation.prompts import load_instructions

    pools = load_instructions(instructions) if instructions else None
    return AnyGPT.load(ckpt, tokenizers=tokenizers, device=device, system_prompt=system_prompt, trust_code=trust_code,
                       image_decoder=image_decoder, template=template, force_marker=force_marker,
                       constrained=constrained, music_seconds=music_seconds, music_start=music_start,
                       instructions=pools, compile=compile)


def _kinds(anygpt: AnyGPT) -> dict[str, MediaKind]:
    return {name: modality.media for name, modality in anygpt.tokenizers.items()}


def chat(ckpt: str = "runs/demo/export", out: str = "chat", tokenizers: dict[str, str | TokenizerRef] | None = None,
         device: str = "cpu", settings: str = "release", voice: str | None = None, seed: int = 0,
         system_prompt: str | None = None, max_new_tokens: int | None = None, input: str | None = None,
         trust_code: bool = False, template: str | None = None, task: str | None = None,
         force_marker: bool | None = None, constrained: bool = True, music_seconds: float | None = None,
         music_start: str = "start",
         instructions: str | None = None, image_decoder: str | None = None, compile: bool | None = None) -> str:
    """Talk to an AnyGPT model; every turn is appended to ``OUT/transcript.html``.

    Args:
        ckpt: AnyGPT/HF folder, released AnyGPT folder, Lightning .ckpt or hub id (``fnlp/AnyGPT-chat``).
        out: folder for generated media and the transcript.
        tokenizers: modality -> tokenizer checkpoint (a path, ``class_path=path``, or path + class_path + options),
            overriding the checkpoint's own.
        settings: decoding presets, ``release`` (the released configs) or ``paper``.
        voice: speech prompt whose voice spoken replies use (SoundStorm voice cloning; the whole file, as the release).
        seed: sampling seed.
        system_prompt: replaces the checkpoint's system prompt.
        max_new_tokens: overrides the preset's budget.
        input: read messages from this file (one per line) instead of the terminal.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt
            (their modules get imported). Off by default: opening a checkpoint never runs code it names.
        template: ``chat`` or ``base`` (default: what the checkpoint's anygpt.json records, else chat when it has the
            instruction tokens <-Ins->/<-Res->).
        task: the release task prompt wrapping each message: ``auto`` (by the requested output), ``none`` (as
            written), or one by name (text-to-image, text-to-speech, speech-instruction, ...); default: what the
            checkpoint records, else ``auto``.
        force_marker: append the output modality's start marker (default: as the checkpoint records it).
        constrained: constrained decoding (on: every span valid; off: the release's unconstrained sampling).
        music_seconds: crop music input to this many seconds (default: 5 in chat, 20 for base, as the release).
        music_start: ``start`` or ``random`` (the release's loader picks a random window).
        instructions: the base template's instruction phrasings from a local copy of the release (its clone, its
            m_utils folder, or a JSON file of pools); default: anygpt's own.
        image_decoder: a local stable-diffusion-2-1-unclip folder turning SEED image embeddings into pixels
            (default: the checkpoint's anygpt.json ``image_decoder``).
        compile: ``torch.compile`` the one-token decode step (true/false); default: on CUDA only (on a CPU the
            compile time outweighs what a chat session saves; docs/performance.md).
    """
    anygpt = _session(ckpt, tokenizers, device, system_prompt, trust_code, template, force_marker, constrained,
                      music_seconds, music_start, instructions, image_decoder, compile)
    transcript = Transcript(Path(out), f"AnyGPT chat with {Path(ckpt).name}", _kinds(anygpt))
    transcript.note(f"{anygpt.describe()}; decoding: {settings} presets")
    commands = output_commands(anygpt.tokenizers)
    generator = torch.Generator().manual_seed(seed)
    stream: TextIO = open(input, encoding="utf-8") if input else sys.stdin
    interactive = input is None and sys.stdin.isatty()
    overrides = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    turn = 0
    try:
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            try:
                line = stream.readline()
            except KeyboardInterrupt:
                break
            if not line:
                break
            message = line.strip()
            if not message:
                continue
            if message in ("/quit", "/exit"):
                break
            if message == "/reset":
                anygpt.reset()
                print("(history cleared)")
                continue
            output, text = _split_command(message, commands)
            try:
                parts = parse_message(text)
                reply = anygpt.chat(parts, output=output, settings=settings, generator=generator, voice=voice,
                                    task=task, **overrides)
            except (FileNotFoundError, ValueError) as err:
                print(f"error: {err}", file=sys.stderr)
                continue
            turn += 1
            reply.save(transcript.folder, f"turn{turn:03d}", anygpt.tokenizers)
            transcript.add_user(parts, output)
            transcript.add_reply(reply)
            transcript.write()
            print(f"anygpt> {_describe(reply)}", flush=True)
    finally:
        if input:
            stream.close()
    path = transcript.write()
    print(f"transcript: {path}")
    return str(path)


def generate(prompt: str, ckpt: str = "runs/demo/export", output: str = "text", out: str = "generated",
             tokenizers: dict[str, str | TokenizerRef] | None = None, device: str = "cpu", settings: str = "release",
             voice: str | None = None, seed: int = 0, max_new_tokens: int | None = None, trust_code: bool = False,
             template: str | None = None, task: str | None = None, force_marker: bool | None = None,
             constrained: bool = True, music_seconds: float | None = None, music_start: str = "start",
             instructions: str | None = None, image_decoder: str | None = None, compile: bool | None = None
             ) -> dict:
    """One prompt -> one reply: prints the text, writes media and ``OUT/transcript.html``, returns a summary.

    Args:
        prompt: text with media placeholders, e.g. ``"Describe this [image: cat.png]"``.
        output: text or a modality of the model (image, speech, music, ...).
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
        template, task, force_marker, constrained, music_seconds, music_start, instructions, image_decoder: as for
            ``anygpt chat``.
        compile: ``torch.compile`` the decode step (true/false); default: on CUDA only.
    """
    anygpt = _session(ckpt, tokenizers, device, None, trust_code, template, force_marker, constrained,
                      music_seconds, music_start, instructions, image_decoder, compile)
    transcript = Transcript(Path(out), f"AnyGPT generate with {Path(ckpt).name}", _kinds(anygpt))
    transcript.note(f"{anygpt.describe()}; decoding: {settings} presets")
    parts = parse_message(prompt)
    overrides = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    reply = anygpt.respond([parts], output=output, settings=settings, voice=voice, task=task,
                           generator=torch.Generator().manual_seed(seed), **overrides)[0]
    files = reply.save(transcript.folder, "reply", anygpt.tokenizers)
    transcript.add_user(parts, output)
    transcript.add_reply(reply)
    page = transcript.write()
    print(_describe(reply))
    return {"text": reply.text, "transcript_heard": reply.transcript, "files": [str(f) for f in files],
            "transcript": str(page), "notes": [s.note for s in reply.segments if s.note],
            "interrupted": reply.interrupted, "settings": anygpt.describe()}
