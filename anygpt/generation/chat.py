"""``anygpt chat`` (interactive, with history) and ``anygpt generate`` (one shot): files in, files out, HTML transcript.

Messages are text with media placeholders, as in AnyInstruct: ``Describe this [image: photos/cat.png]``. Start a
message with ``/`` and a modality of the model (``/image``, ``/speech``, ``/music``, a plugin's ``/depth``) to ask for
that output modality, ``/text`` for text: the message is wrapped in the release's task prompt for it
(``--prompt.task``), and the modality's start marker is appended only where the checkpoint (or
``--prompt.force_marker``) asks for it; ``/reset`` clears the history, ``/quit`` (or end of input) leaves, ``/help``
lists the loaded model's commands. A command or a placeholder for a modality the model lacks is an error, never text
sent to the model. Ctrl-C during generation keeps what was produced so far. A spoken-dialogue reply shows what the
model heard and its answer apart. The options come in the groups of `anygpt.generation.options`: ``--loading.*``,
``--prompt.*``, ``--decoding.*``.
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

import torch

from anygpt.assets import TRAINED_DEMO, default_checkpoint
from anygpt.data.checks import check_media_words
from anygpt.generation.options import DecodingOptions, LoadingOptions, PromptOptions
from anygpt.generation.pipeline import AnyGPT, Media, Part, Reply, parse_message
from anygpt.htmlpage import HtmlPage
from anygpt.media import MediaKind
from anygpt.modalities.registry import available_modalities, media_kind_of, media_words


def output_commands(modalities: Iterable[str]) -> dict[str, str]:
    """Slash command -> output modality: ``/text`` and one per modality of the model."""
    return {"/text": "text", **{f"/{name}": name for name in modalities}}


SESSION_COMMANDS = {"/help": "list the commands and media placeholders of this model",
                    "/reset": "clear the conversation history", "/quit": "leave (also /exit, or end of input)"}


class UnknownCommand(ValueError):
    """A message starts with a slash command the loaded model does not have."""


def command_help(kinds: Mapping[str, MediaKind]) -> str:
    """What ``/help`` prints: the commands of the loaded model (one per modality it has) and its placeholders."""
    lines = ["commands:", f"  {'/text MESSAGE':<22} a text reply (the default)"]
    lines += [f"  {f'/{name} MESSAGE':<22} ask for a {name} reply (written as {kind.suffix})"
              for name, kind in kinds.items()]
    lines += [f"  {name:<22} {what}" for name, what in SESSION_COMMANDS.items()]
    words = media_words()
    lines.append("media in a message: " + ", ".join(
        f"[{word}: FILE]" for word, modality in sorted(words.items()) if modality in kinds) + (
        "" if kinds else "(this model has no media modality)"))
    return "\n".join(lines)


def cli_epilog() -> str:
    """The slash commands, for ``anygpt chat --help`` (a model's own are listed by ``/help`` in its session)."""
    return ("In a session: /text or /MODALITY then a message asks for that kind of reply, one command per modality "
            f"of the loaded model (registered here: {', '.join(available_modalities())}); "
            f"{', '.join(SESSION_COMMANDS)} (/help lists the loaded model's commands). Media go in messages as "
            "[MODALITY: FILE].")


def split_command(message: str, commands: Mapping[str, str]) -> tuple[str, str]:
    """(output modality, message text) of a message that may start with an output command (`output_commands`; the
    serve page reads its messages with it too); a ``/word`` that is no command of this model raises `UnknownCommand` (it
    would otherwise be sent to the model as text)."""
    head, _, rest = message.strip().partition(" ")
    if head in commands:
        return commands[head], rest
    if re.fullmatch(r"/[A-Za-z][\w-]*", head):
        has = ", ".join(c for c in commands if c != "/text") or "none"
        modality = media_words().get(head[1:])
        if modality is not None:
            raise UnknownCommand(f"this model has no {modality} modality, so {head} cannot ask for {modality} output "
                                 f"(its modality commands: {has}); /help lists its commands")
        close = difflib.get_close_matches(head, [*commands, *SESSION_COMMANDS], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UnknownCommand(f"unknown command {head}; {hint}/help lists the commands of this model")
    return "text", message.strip()


def _check_media(parts: list[Part], text: str, modalities: Iterable[str]) -> None:
    """Placeholders of no registered modality, or of one the model lacks, are errors, never text sent as is."""
    check_media_words(text)
    have = set(modalities)
    for part in parts:
        if isinstance(part, Media) and part.modality not in have:
            raise ValueError(f"this model has no {part.modality} modality, so it cannot read {part.label} (it has: "
                             f"{', '.join(sorted(have)) or 'text only'}); /help lists its placeholders")


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


def media_kinds(anygpt: AnyGPT) -> dict[str, MediaKind]:
    """Modality -> the media kind of its files, for the loaded model (what `command_help` lists)."""
    return {name: modality.media for name, modality in anygpt.tokenizers.items()}


def _open(command: str, ckpt: str | None, out: str, device: str, loading: LoadingOptions, prompt: PromptOptions,
          decoding: DecodingOptions) -> tuple[AnyGPT, Transcript]:
    """The model (``ckpt``, or the default checkpoint) and a transcript in ``out`` that notes the settings."""
    if not ckpt:
        ckpt = default_checkpoint()
        print(f"[{command}] no --ckpt given: {ckpt}" + ("" if ckpt == TRAINED_DEMO else
                                                         " (the demo model shipped with anygpt)"), file=sys.stderr)
    anygpt = AnyGPT.load(ckpt, loading, prompt, device)
    transcript = Transcript(Path(out), f"AnyGPT {command} with {Path(ckpt).name}", media_kinds(anygpt))
    transcript.note(f"{anygpt.describe()}; decoding: {decoding.settings} presets")
    return anygpt, transcript


def chat(ckpt: str | None = None, out: str = "chat", device: str = "cpu", voice: str | None = None,
         input: str | None = None, loading: LoadingOptions = LoadingOptions(), prompt: PromptOptions = PromptOptions(),
         decoding: DecodingOptions = DecodingOptions()) -> str:
    """Talk to an AnyGPT model; every turn is appended to ``OUT/transcript.html``.

    Args:
        ckpt: AnyGPT/HF folder, released AnyGPT folder, Lightning .ckpt or hub id (``fnlp/AnyGPT-chat``); default:
            ``runs/demo/export`` when the main command has run here, else the demo model shipped with anygpt.
        out: folder for generated media and the transcript.
        device: where the model runs ("cpu", "cuda", "cuda:1").
        voice: speech prompt whose voice spoken replies use (SoundStorm voice cloning; the whole file, as the release).
        input: read messages from this file (one per line) instead of the terminal.
        loading: how the checkpoint is opened (``--loading.tokenizers``, ``--loading.compile``, ...).
        prompt: how prompts are written (``--prompt.template``, ``--prompt.task``, ``--prompt.system_prompt``, ...).
        decoding: how replies are decoded (``--decoding.settings``, ``--decoding.max_new_tokens``,
            ``--decoding.seed``, ...).
    """
    anygpt, transcript = _open("chat", ckpt, out, device, loading, prompt, decoding)
    commands = output_commands(anygpt.tokenizers)
    generator = torch.Generator().manual_seed(decoding.seed)
    stream: TextIO = open(input, encoding="utf-8") if input else sys.stdin
    interactive = input is None and sys.stdin.isatty()
    overrides = decoding.generation_overrides()
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
            if message == "/help":
                print(command_help(media_kinds(anygpt)), flush=True)
                continue
            try:
                output, text = split_command(message, commands)
                parts = parse_message(text)
                _check_media(parts, text, anygpt.tokenizers)
                reply = anygpt.chat(parts, output=output, settings=decoding.settings, generator=generator,
                                    voice=voice, **overrides)
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


chat.cli_epilog = cli_epilog  # type: ignore[attr-defined]  # shown by `anygpt chat --help` (anygpt.cli)


def generate(message: str, ckpt: str | None = None, output: str = "text", out: str = "generated",
             device: str = "cpu", voice: str | None = None, loading: LoadingOptions = LoadingOptions(),
             prompt: PromptOptions = PromptOptions(), decoding: DecodingOptions = DecodingOptions()) -> dict:
    """One message -> one reply: prints the text, writes media and ``OUT/transcript.html``, returns a summary.

    Args:
        message: text with media placeholders, e.g. ``"Describe this [image: cat.png]"``.
        ckpt: AnyGPT/HF folder, released AnyGPT folder, Lightning .ckpt or hub id; default as `chat`'s.
        output: text or a modality of the model (image, speech, music, ...).
        out: folder for generated media and the transcript.
        device: where the model runs ("cpu", "cuda", "cuda:1").
        voice: speech prompt whose voice a spoken reply uses.
        loading: how the checkpoint is opened (``--loading.tokenizers``, ``--loading.compile``, ...).
        prompt: how the prompt is written (``--prompt.template``, ``--prompt.task``, ...).
        decoding: how the reply is decoded (``--decoding.settings``, ``--decoding.max_new_tokens``, ...).
    """
    anygpt, transcript = _open("generate", ckpt, out, device, loading, prompt, decoding)
    if output != "text" and output not in anygpt.tokenizers:
        raise ValueError(f"this model has no {output} modality (it has: {', '.join(anygpt.tokenizers) or 'text only'})")
    parts = parse_message(message)
    _check_media(parts, message, anygpt.tokenizers)
    reply = anygpt.respond([parts], output=output, settings=decoding.settings, voice=voice,
                           generator=torch.Generator().manual_seed(decoding.seed),
                           **decoding.generation_overrides())[0]
    files = reply.save(transcript.folder, "reply", anygpt.tokenizers)
    transcript.add_user(parts, output)
    transcript.add_reply(reply)
    page = transcript.write()
    print(_describe(reply))
    return {"text": reply.text, "transcript_heard": reply.transcript, "files": [str(f) for f in files],
            "transcript": str(page), "notes": [s.note for s in reply.segments if s.note],
            "interrupted": reply.interrupted, "settings": anygpt.describe()}
