"""The ``anygpt serve`` web page (Gradio) over `anygpt.serve.session`, and its HTTP API.

Every request that touches the model goes through Gradio's queue, one at a time (the page shows each visitor's place
in it); stopping and resetting skip the queue. The page's operations are API endpoints for scripts: ``/chat`` (a
message with files -> text, media files, notes, transcript), ``/stop`` and ``/reset`` (see the README).
Nothing is fetched from the network: Gradio's analytics are off and server-side rendering (a Node process) is not used.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gradio import Request

from anygpt.generation.chat import UnknownCommand, command_help, media_kinds, output_commands, split_command
from anygpt.media import MEDIA_KINDS, kind_of_file, preview_png
from anygpt.prompts import TASKS
from anygpt.serve.api import OpenAIRoutes, mount
from anygpt.serve.session import AUTO, ChatSession, ModelHost, ServeError, TurnRequest, TurnResult, Upload
from anygpt.serve.uploads import size_text

log = logging.getLogger(__name__)

POLL_SECONDS = 0.3  # how often the page's progress line is refreshed while a turn runs
CACHE_SECONDS = 24 * 3600  # Gradio's copies of uploads and replies older than this are deleted (checked hourly)
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$])")  # what Markdown or LaTeX would render


def _components_for(path: str | Path, kind: str | None) -> list[Any]:
    """What shows a media file in the chat: an image, a player with its waveform, or a file to download (after its
    kind's preview, `anygpt.media.MediaKind.preview`, when it has one: a plugin's kind shows as its preview)."""
    import gradio as gr

    media_kind = MEDIA_KINDS.get(kind or "")
    element = media_kind.html if media_kind is not None else None
    if element == "img":
        return [gr.Image(str(path), show_label=False, buttons=["download"])]
    if element == "audio":
        return [gr.Audio(str(path), show_label=False, buttons=["download"])]
    png = None if media_kind is None else preview_png(media_kind, path)
    if png is None:
        return [gr.File(str(path), show_label=False)]
    preview = Path(path).with_name(f"{Path(path).name}.preview.png")
    preview.write_bytes(png)
    return [gr.Image(str(preview), show_label=False, label=f"{media_kind.name} preview"),
            gr.File(str(path), show_label=False)]


def page_command(text: str, host: ModelHost) -> tuple[str | None, str, str | None]:
    """`anygpt chat`'s slash commands on the page, read by its own `split_command`: (the output a ``/MODALITY``
    command asks for, else None; the message without the command; the answer to ``/help``, given without the model,
    else None). ``/reset`` answers None, "" and "/reset". A command of no modality of the model is a `ServeError`
    saying so (never text sent to the model)."""
    words = text.strip().split(maxsplit=1)
    if not words or not words[0].startswith("/"):
        return None, text, None
    if words[0] == "/help":
        page = "\n(on this page: attach files rather than writing [WORD: FILE]; Reset or /reset starts over)"
        return None, "", command_help(media_kinds(host.engine)) + page
    if words[0] == "/reset":
        return None, "", "/reset"
    if words[0] in ("/quit", "/exit"):
        raise ServeError(f"{words[0]} leaves `anygpt chat`; here, close the page (Reset starts over)")
    try:
        output, rest = split_command(text, output_commands(host.outputs[1:]))
    except UnknownCommand as err:
        raise ServeError(str(err)) from None
    return (AUTO if output == "text" else output), rest, None


def _literal(text: str) -> str:
    """Text shown as typed or generated: Markdown and LaTeX characters escaped. (The Chatbot renders Markdown; with
    rendering off, Gradio 6.31 draws each chat audio player a bubble high.)"""
    return _MARKUP.sub(r"\\\1", text)


def _user_messages(message: dict) -> list[dict]:
    out = []
    if (message.get("text") or "").strip():
        out.append({"role": "user", "content": _literal(message["text"])})
    for path in message.get("files") or []:  # as files: the page shows them by type; a kind's preview if it has one
        kind = kind_of_file(path)
        shown = _components_for(path, kind.name) if kind is not None and kind.html is None else [{"path": path}]
        out.extend({"role": "user", "content": content} for content in shown)
    return out


def _reply_messages(result: TurnResult) -> list[dict]:
    import gradio as gr

    out: list[dict] = []
    if result.text:
        out.append({"role": "assistant", "content": _literal(result.text)})
    for item in result.media:
        out.extend({"role": "assistant", "content": part} for part in _components_for(item.path, item.kind))
    if len(result.media) > 1:  # a bubble's own download button takes its first file; this lists them all
        out.append({"role": "assistant", "content": gr.File([str(item.path) for item in result.media],
                                                            file_count="multiple", label="Files of this reply")})
    if result.notes:
        out.append({"role": "assistant", "content": _literal("\n".join(result.notes)), "metadata": {"title": "Notes"}})
    return out or [{"role": "assistant", "content": "(empty reply)"}]


def build_app(host: ModelHost, title: str | None = None):
    """The page for ``host``; its choices (output modalities, upload kinds, presets) come from the loaded model."""
    import gradio as gr

    title = title or f"AnyGPT · {host.name}"
    shared_kinds = [kind for kind in host.upload_kinds if len(host.readers(kind)) > 1]  # e.g. audio: speech or music
    default_settings, first_seed = host.defaults.settings, host.defaults.seed  # `anygpt serve --decoding.*`

    def request_of(message: dict | None, output: str, read_as: dict[str, str], voice: str | None, settings: str,
                   task: str | None, constrained: bool | None, temperature: float | None, top_p: float | None,
                   max_new_tokens: float | None, seed: float | None) -> TurnRequest:
        message = message or {}
        return TurnRequest(text=message.get("text") or "", files=[Upload(p) for p in message.get("files") or []],
                           output=output, settings=settings, task=task or None, constrained=constrained,
                           temperature=temperature, top_p=top_p,
                           max_new_tokens=None if max_new_tokens is None else int(max_new_tokens),
                           seed=int(seed or 0), voice=voice or None, read_as=read_as)

    def session_of(chat_session: ChatSession | None, request: Request | None = None) -> ChatSession:
        """Sessions start with a visitor's first request (a page that only looks costs nothing), keyed by the
        client's session hash so that `/stop` finds a first turn still running; an expired one starts afresh."""
        if chat_session is not None and not chat_session.closed:
            return chat_session
        return host.session(getattr(request, "session_hash", None))

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, CACHE_SECONDS)) as app:
        session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
        ticket = gr.State(None)
        submitted = gr.State(None)  # the message as sent and the chat's length before it, to restore on an error
        shown = gr.State([])  # the chat's messages (the Chatbot is output only: as an input it would re-read media)
        gr.Markdown(f"## {html.escape(title)}\n{html.escape(host.describe())}")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", height=560, elem_id="chat", buttons=["copy"],
                                     feedback_options=None)
                box = gr.MultimodalTextbox(
                    label="Message", show_label=False, elem_id="message", file_count="multiple",
                    file_types=[suffix for kind in host.upload_kinds for suffix in MEDIA_KINDS[kind].suffixes],
                    sources=["upload", "microphone"],
                    placeholder=f"Type a message; attach or drop {' or '.join(host.upload_kinds)} files; or record "
                                "from the microphone")
                with gr.Row():
                    stop = gr.Button("Stop", elem_id="stop", size="sm")
                    reset = gr.Button("Reset", elem_id="reset", size="sm")
                    transcript = gr.DownloadButton("Download transcript (.zip)", elem_id="transcript", size="sm",
                                                   interactive=False)
            with gr.Column(scale=1):
                output = gr.Radio(host.outputs, value=AUTO, label="Answer with", elem_id="output",
                                  info="auto: text, or whatever the model chooses to produce")
                read_as = [gr.Radio(host.readers(kind), value=host.readers(kind)[0], elem_id=f"read-{kind}",
                                    label=f"{kind.capitalize()} uploads are") for kind in shared_kinds]
                voice = gr.Audio(label="Voice of spoken replies (optional, a few seconds)", type="filepath",
                                 sources=["upload", "microphone"], visible="speech" in host.outputs, elem_id="voice")
                task = gr.Dropdown(list(TASKS), value=host.task, label="Task prompt", elem_id="task",
                                   info="the release's prompt around the message: auto picks it by the output; none "
                                        "sends the message as written")
                with gr.Accordion("Decoding", open=True):
                    settings = gr.Dropdown(host.settings_choices, value=default_settings, label="Preset")
                    constrained = gr.Checkbox(host.engine.constrained, label="Constrained decoding",
                                              info="every media span decodes; off: the release's sampling")
                    temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p")
                    max_tokens = gr.Slider(1, host.context, value=min(100, host.context), step=1,
                                           label="Max new tokens")
                    seed = gr.Number(first_seed, precision=0, label="Seed")
                    decoding_info = gr.Markdown(elem_id="decoding-info")
        choices = [output, voice, settings, task, constrained, temperature, top_p, max_tokens, seed,
                   *read_as]  # a turn's choices

        def page_request(message: dict | None, output_value, voice_value, *values) -> TurnRequest:
            knob_values, read_values = values[:-len(read_as) or None], values[len(values) - len(read_as):]
            return request_of(message, output_value, dict(zip(shared_kinds, read_values, strict=True)), voice_value,
                              *knob_values)

        # -- decoding knobs follow the preset of the chosen output ---------------------------------------------------
        def preset_values(output_value: str, settings_value: str):
            config = host.decoding(output_value, settings_value)
            sampling = config.do_sample
            if sampling:
                how = "sampling" if config.num_beams == 1 else f"beam sampling with {config.num_beams} beams"
                info = (f"`{settings_value}` preset: {how}, top-k {config.top_k or 'off'}, repetition penalty "
                        f"{config.repetition_penalty}, at least {config.min_new_tokens} new tokens")
            else:
                info = (f"`{settings_value}` preset: beam search with {config.num_beams} beams (temperature and top-p "
                        "are not used)")
            return (gr.Slider(value=config.temperature, interactive=sampling),
                    gr.Slider(value=config.top_p if config.top_p is not None else 1.0, interactive=sampling),
                    gr.Slider(value=min(config.max_new_tokens, host.context)), info)

        for trigger in (output.change, settings.change, app.load):
            trigger(preset_values, [output, settings], [temperature, top_p, max_tokens, decoding_info], queue=False,
                    api_visibility="private")

        # -- a turn: show the message at once, then generate in the queue --------------------------------------------
        def submit(message: dict | None, history: list, chat_session: ChatSession | None, request: Request):
            chat_session = session_of(chat_session, request)
            messages = [*history, *_user_messages(message or {})]
            return (messages, messages, gr.MultimodalTextbox(value=None, interactive=False), chat_session,
                    chat_session.ticket(), (message, len(history)))

        def run(sent: tuple, history: list, chat_session: ChatSession, turn_ticket: int, *values) -> Iterator[tuple]:
            message, base = sent
            try:  # `anygpt chat`'s commands: /help and /reset answer here, /MODALITY sets the output
                forced, text, answer = page_command((message or {}).get("text") or "", host)
            except ServeError as err:
                gr.Warning(html.escape(str(err)), duration=None, title="Could not answer")
                yield history[:base], gr.MultimodalTextbox(value=message, interactive=True), gr.skip(), history[:base]
                return
            if answer == "/reset":
                chat_session.reset()
                yield [], gr.MultimodalTextbox(value=None, interactive=True), gr.DownloadButton(interactive=False), []
                return
            if answer is not None:
                messages = [*history, {"role": "assistant", "content": f"```\n{answer}\n```"}]
                yield messages, gr.MultimodalTextbox(value=None, interactive=True), gr.skip(), messages
                return
            request = page_request({**(message or {}), "text": text}, *values)
            request.output = request.output if forced is None else forced
            resets = chat_session.resets
            pending = {"role": "assistant", "content": "", "metadata": {"title": "Working…", "status": "pending"}}
            outcome: dict[str, Any] = {}

            def work() -> None:
                try:
                    outcome["result"] = chat_session.send(request, turn_ticket)
                except ServeError as err:
                    outcome["error"] = str(err)
                except Exception as err:  # a bug, not the visitor's doing: logged in full, summarised on the page
                    log.exception("anygpt serve: a turn failed")
                    outcome["error"] = f"internal error ({type(err).__name__}: {err}); the server log has details"

            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            while worker.is_alive():
                pending["metadata"]["log"] = chat_session.status.describe() or "starting…"
                yield [*history, pending], gr.skip(), gr.skip(), gr.skip()
                worker.join(POLL_SECONDS)
            if chat_session.resets != resets:  # reset while it ran: that conversation is gone
                yield [], gr.MultimodalTextbox(interactive=True), gr.skip(), []
            elif "error" in outcome:  # the message goes back into the box: nothing the visitor sent is lost
                gr.Warning(html.escape(outcome["error"]), duration=None, title="Could not answer")
                yield (history[:base], gr.MultimodalTextbox(value=message, interactive=True), gr.skip(),
                       history[:base])
            else:
                messages = [*history, *_reply_messages(outcome["result"])]
                yield (messages, gr.MultimodalTextbox(value=None, interactive=True),
                       gr.DownloadButton(value=str(chat_session.transcript_zip()), interactive=True), messages)

        box.submit(submit, [box, shown, session], [chatbot, shown, box, session, ticket, submitted], queue=False,
                   api_visibility="private").then(
            run, [submitted, shown, session, ticket, *choices], [chatbot, box, transcript, shown],
            concurrency_id="model", show_progress="minimal", api_visibility="private")

        # -- stop, reset ---------------------------------------------------------------------------------------------
        def stop_turn(chat_session: ChatSession | None, request: Request) -> None:
            """Stop this client's running or waiting turn; a running one keeps what it generated."""
            chat_session = chat_session or host.find(request.session_hash)  # a first turn has not returned the state
            if chat_session is not None:
                chat_session.stop()

        def reset_chat(chat_session: ChatSession | None, request: Request):
            """Forget this client's conversation (history, transcript and files)."""
            chat_session = chat_session or host.find(request.session_hash)
            if chat_session is not None:
                chat_session.reset()
            return [], [], gr.DownloadButton(value=None, interactive=False)

        stop.click(stop_turn, [session], None, queue=False, api_name="stop")
        reset.click(reset_chat, [session], [chatbot, shown, transcript], queue=False, api_name="reset")
        chatbot.clear(reset_chat, [session], [chatbot, shown, transcript], queue=False, api_visibility="private")

        # -- the HTTP API's one-call turn: the page's choices; knobs left out take the preset's values --------------
        readers = list(dict.fromkeys(name for kind in shared_kinds for name in host.readers(kind)))
        with gr.Column(visible=False):
            api_inputs = [
                gr.MultimodalTextbox(label="message", file_count="multiple"),
                gr.Dropdown(host.outputs, value=AUTO, label="output"),
                gr.Dropdown(readers, value=[host.readers(kind)[0] for kind in shared_kinds], multiselect=True,
                            label="read_as"),
                gr.Audio(label="voice", type="filepath"),
                gr.Dropdown(host.settings_choices, value=default_settings, label="preset"),
                gr.Dropdown(list(TASKS), value=host.task, label="task"),
                gr.Checkbox(host.engine.constrained, label="constrained"),
                gr.Number(None, label="temperature"),
                gr.Number(None, label="top_p"),
                gr.Number(None, label="max_new_tokens", precision=0),
                gr.Number(first_seed, label="seed", precision=0),
            ]
            api_outputs = [gr.Textbox(label="text"), gr.File(file_count="multiple", label="files"),
                           gr.JSON(label="notes"), gr.File(label="transcript")]
            api_trigger = gr.Button()

        async def chat(message: dict, output: str = AUTO, read_as: list[str] | None = None, voice: str | None = None,
                       preset: str = default_settings, task: str = host.task,
                       constrained: bool = host.engine.constrained, temperature: float | None = None,
                       top_p: float | None = None, max_new_tokens: int | None = None, seed: int = first_seed,
                       chat_session: ChatSession | None = None, request: Request = None):
            """One turn of this client's conversation: a message ``{"text", "files"}`` -> the reply's text, media
            files, notes and the transcript (.zip). ``read_as`` names the modalities that read uploads several
            could read (an audio file: speech or music); ``task`` is the release task prompt around the message;
            knobs left out take the preset's values. A job the client cancels stops at the next token."""
            chat_session = session_of(chat_session, request)
            try:
                forced, text, answer = page_command((message or {}).get("text") or "", host)
            except ServeError as err:
                raise gr.Error(str(err), print_exception=False) from None
            if answer is not None:  # /help, /reset: answered without the model
                if answer == "/reset":
                    chat_session.reset()
                    answer = "(history cleared)"
                return answer, [], [], None, chat_session
            message, output = {**message, "text": text}, output if forced is None else forced
            by_kind = {kind: next((m for m in read_as or [] if m in host.readers(kind)), host.readers(kind)[0])
                       for kind in shared_kinds}
            turn_request = request_of(message, output, by_kind, voice, preset, task, constrained, temperature, top_p,
                                      max_new_tokens, seed)
            cancelled = threading.Event()
            try:
                result = await asyncio.to_thread(chat_session.send, turn_request, None, cancelled.is_set)
            except ServeError as err:  # the client raises it with this message
                raise gr.Error(str(err), print_exception=False) from None
            except asyncio.CancelledError:  # the client cancelled the job: free the model at the next token
                cancelled.set()
                raise
            except Exception as err:  # a bug, not the client's doing: logged in full, summarised for the client
                log.exception("anygpt serve: an API turn failed")
                raise gr.Error(f"internal error ({type(err).__name__}); the server log has details",
                               print_exception=False) from None
            files = [str(item.path) for item in result.media]
            return result.text, files, result.notes, str(chat_session.transcript_zip()), chat_session

        api_trigger.click(chat, [*api_inputs, session], [*api_outputs, session], api_name="chat",
                          concurrency_id="model")
    return app


class NamedUploads:
    """ASGI wrapper around Gradio's server: a 413 from its upload route names the file that was too large (Gradio's
    own message gives only the limit in bytes). The name is read from the multipart headers as the body streams by."""

    FILENAME = re.compile(rb'filename="([^"\r\n]{1,255})"')

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit = inner, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/gradio_api/upload"):
            return await self.inner(scope, receive, send)
        seen = {"name": None, "tail": b"", "status": None}

        async def reading() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                chunk = seen["tail"] + message.get("body", b"")
                names = self.FILENAME.findall(chunk)
                if names:
                    seen["name"] = names[-1].decode("utf-8", "replace")
                seen["tail"] = chunk[-300:]
            return message

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 413:
                seen["status"] = 413
                text = (f"{seen['name'] or 'the file'} is over the upload limit of {size_text(self.limit)}; "
                        "send a smaller file").encode()
                seen["text"] = text
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                message = {**message, "headers": [*headers, (b"content-length", str(len(text)).encode())]}
            elif message["type"] == "http.response.body" and seen["status"] == 413:
                if seen.get("sent"):
                    return
                seen["sent"] = True
                message = {"type": "http.response.body", "body": seen["text"], "more_body": False}
            await send(message)

        await self.inner(scope, reading, sending)


def launch(host: ModelHost, server_name: str = "127.0.0.1", port: int = 7860, max_queue: int = 16,
           block: bool = True, api_key: str | None = None):
    """Build the page, add the OpenAI-compatible routes under ``/v1`` (`anygpt.serve.api`; ``api_key``: the Bearer
    token they require) and start the server; uploads are kept under ``host.root`` (removed by `ModelHost.close`).

    Gradio's own errors (a file path the client did not upload) reach the client with their message
    (``show_error``); the API's turn turns any other failure into a short message, the log keeps the traceback."""
    os.environ["GRADIO_TEMP_DIR"] = str(host.root / "gradio")  # where Gradio stores uploads (read per upload)
    app = build_app(host)
    app.queue(default_concurrency_limit=1, max_size=max_queue)
    app.launch(server_name=server_name, server_port=port, max_file_size=host.limits.max_bytes,
               allowed_paths=[str(host.root)], ssr_mode=False, share=False, show_error=True,
               prevent_thread_lock=True)
    mount(app.app, OpenAIRoutes(host, api_key=api_key))
    if app.app.middleware_stack is None:
        app.app.middleware_stack = app.app.build_middleware_stack()
    app.app.middleware_stack = NamedUploads(app.app.middleware_stack, host.limits.max_bytes)
    if block:
        app.block_thread()
    return app
