"""``anygpt chat`` (interactive, with history) and ``anygpt generate`` (one shot): files in, files out, HTML transcript.

Messages are text with media placeholders, as in AnyInstruct: ``Describe this [image: photos/cat.png]``. Start a
message with ``/`` and a modality of the model (``/image``, ``/speech``, ``/music``, a plugin's ``/depth``) to ask for
that output modality (the release appends ``<soim>``, ``<sosp>`` or ``<somu>`` to the prompt the same way), ``/text``
for text; ``/reset`` clears the history, ``/quit`` (or end of input) leaves. Ctrl-C during generation keeps what was
produced so far.
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

    def _copy_input(self, media: Media) -> Path | None:
        if isinstance(media.source, torch.Tensor):
            return None
        src = Path(media.source)
        dst = self.folder / "inputs" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        return dst

    def _kind(self, modality: str) -> MediaKind:
        return self.kinds[modality] if modality in self.kinds else media_kind_of(modality)

    def add_user(self, parts: list[Part], output: str) -> None:
        body = []
        for part in parts:
            if isinstance(part, Media):
                copied = self._copy_input(part)
                body.append(HtmlPage.media(copied, self._kind(part.modality), self.folder) if copied else
                            HtmlPage.text(part.label))
            else:
                body.append(HtmlPage.text(part))
        note = f"asked for {output} output" if output != "text" else None
        self.turns.append(("User", " ".join(body), note))

    def add_reply(self, reply: Reply) -> None:
        body = []
        notes = [s.note for s in reply.segments if s.note]
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
        for role, body, note in self.turns:
            page.turn(role, body, note)
        return page.write(self.folder / "transcript.html")


def _split_command(message: str, commands: Mapping[str, str]) -> tuple[str, str]:
    head, _, rest = message.strip().partition(" ")
    if head in commands:
        return commands[head], rest
    return "text", message.strip()


def _describe(reply: Reply) -> str:
    lines = []
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


def _kinds(anygpt: AnyGPT) -> dict[str, MediaKind]:
    return {name: modality.media for name, modality in anygpt.tokenizers.items()}


def chat(ckpt: str = "runs/demo/export", out: str = "chat", tokenizers: dict[str, str | TokenizerRef] | None = None,
         device: str = "cpu", settings: str = "release", voice: str | None = None, seed: int = 0,
         system_prompt: str | None = None, max_new_tokens: int | None = None, input: str | None = None,
         trust_code: bool = False) -> str:
    """Talk to an AnyGPT model; every turn is appended to ``OUT/transcript.html``.

    Args:
        ckpt: AnyGPT/HF folder, released AnyGPT folder or Lightning .ckpt.
        out: folder for generated media and the transcript.
        tokenizers: modality -> tokenizer checkpoint (a path, ``class_path=path``, or path + class_path + options),
            overriding the checkpoint's own.
        settings: decoding presets, ``release`` (the released configs) or ``paper``.
        voice: speech prompt (~3 s) whose voice spoken replies use (SoundStorm voice cloning).
        seed: sampling seed.
        system_prompt: replaces the checkpoint's system prompt.
        max_new_tokens: overrides the preset's budget.
        input: read messages from this file (one per line) instead of the terminal.
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt
            (their modules get imported). Off by default: opening a checkpoint never runs code it names.
    """
    anygpt = AnyGPT.load(ckpt, tokenizers=tokenizers, device=device, system_prompt=system_prompt,
                         trust_code=trust_code)
    transcript = Transcript(Path(out), f"AnyGPT chat with {Path(ckpt).name}", _kinds(anygpt))
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
                                    **overrides)
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
             voice: str | None = None, seed: int = 0,
             max_new_tokens: int | None = None, trust_code: bool = False) -> dict:
    """One prompt -> one reply: prints the text, writes media and ``OUT/transcript.html``, returns a summary.

    Args:
        prompt: text with media placeholders, e.g. ``"Describe this [image: cat.png]"``.
        output: text or a modality of the model (image, speech, music, ...).
        trust_code: let the checkpoint name tokenizer classes that are neither registered nor part of anygpt.
    """
    anygpt = AnyGPT.load(ckpt, tokenizers=tokenizers, device=device, trust_code=trust_code)
    transcript = Transcript(Path(out), f"AnyGPT generate with {Path(ckpt).name}", _kinds(anygpt))
    parts = parse_message(prompt)
    overrides = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    reply = anygpt.respond([parts], output=output, settings=settings, voice=voice,
                           generator=torch.Generator().manual_seed(seed), **overrides)[0]
    files = reply.save(transcript.folder, "reply", anygpt.tokenizers)
    transcript.add_user(parts, output)
    transcript.add_reply(reply)
    page = transcript.write()
    print(_describe(reply))
    return {"text": reply.text, "files": [str(f) for f in files], "transcript": str(page),
            "notes": [s.note for s in reply.segments if s.note], "interrupted": reply.interrupted}
