"""OpenAI-compatible routes of ``anygpt serve`` under ``/v1``, on the page's port and sharing its model queue.

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="unused")
    client.chat.completions.create(model="anygpt", messages=[{"role": "user", "content": "Hello"}])

Routes: ``GET /v1/models``; ``POST /v1/chat/completions`` (text, ``image_url`` data URLs and ``input_audio`` parts in;
text, and with ``modalities`` speech, music or images out; ``stream`` as server-sent events token by token);
``POST /v1/audio/speech`` (WAV), ``POST /v1/audio/transcriptions`` (multipart), ``POST /v1/images/generations``
(``b64_json`` PNG). Extensions (docs/serve/api.md): ``modalities`` may name ``music`` or ``image``; ``POST
/v1/audio/music``; ``GET /v1/anygpt/status``; request fields ``task``, ``preset``, ``constrained``, ``num_beams``,
``read_audio_as``; reply fields ``message.media`` and ``message.notes``.

Each request is a conversation of its own (the messages it carries; assistant audio is recalled by its ``id``), run as
a `ChatSession` over the shared model: it waits its turn with the page's visitors (first come, first served) and stops
at the next token when its client disconnects. Bad requests get OpenAI's error body with a 4xx status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from anygpt.generation.pipeline import Media, Turn
from anygpt.generation.streaming import AudioStreamer
from anygpt.media import MEDIA_KINDS, preview_png
from anygpt.serve.events import chat_events
from anygpt.serve.openai_schema import AUDIO_FORMATS, IMAGE_SUFFIXES, OUTPUTS, RECALLED, Checks, error, need
from anygpt.serve.session import AUTO, ChatSession, ModelHost, TurnRequest, TurnResult
from anygpt.serve.uploads import ServeError, TooLarge, Upload, size_text


class OpenAIRoutes:
    """The ``/v1`` app over a `ModelHost`; ``api_key``: the Bearer token clients must send (None: any)."""

    def __init__(self, host: ModelHost, api_key: str | None = None, model_id: str | None = None,
                 max_body_mb: float | None = None) -> None:
        self.host, self.api_key = host, api_key
        self.model_id = model_id or host.name
        limits = host.limits
        # a body carries at most max_files uploads, base64-encoded (4/3) with some JSON around them
        self.max_body = int(max_body_mb * 2**20) if max_body_mb else \
            int(limits.max_files * limits.max_bytes * 1.4) + 2**20
        self.folder = host.root / "api"
        self._recall: OrderedDict[str, str] = OrderedDict()  # audio id -> the assistant turn as the template writes it
        self.app = self._build()

    # -- the app -------------------------------------------------------------------------------------------------------
    def _build(self) -> Checks:
        app = FastAPI(title="anygpt serve: OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(HTTPException)
        async def httperror(request: Request, exc: HTTPException) -> JSONResponse:  # unknown routes, methods
            return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

        app.add_api_route("/models", self.models, methods=["GET"])
        app.add_api_route("/models/{model}", self.model, methods=["GET"])
        app.add_api_route("/anygpt/status", self.status, methods=["GET"])
        for path, handler in [("/chat/completions", self.chat), ("/audio/speech", self.speech),
                              ("/audio/music", self.music), ("/audio/transcriptions", self.transcription),
                              ("/images/generations", self.images)]:
            app.add_api_route(path, self._guarded(handler), methods=["POST"])
        return Checks(app, self.api_key, self.max_body)

    def _guarded(self, handler: Callable) -> Callable:
        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ServeError as err:
                return error(err.status, str(err), err.param)
        route.__name__ = handler.__name__
        return route

    # -- models and status ---------------------------------------------------------------------------------------------
    def _model_card(self) -> dict:
        return {"id": self.model_id, "object": "model", "created": 0, "owned_by": "anygpt",
                "modalities": self.host.outputs[1:]}

    async def models(self) -> dict:
        return {"object": "list", "data": [self._model_card()]}

    async def model(self, model: str) -> Response:
        if model != self.model_id:
            return error(404, f"no model {model!r}; this server serves {self.model_id!r}", "model")
        return JSONResponse(self._model_card())

    async def status(self) -> dict:
        """Whether the model is generating, how many requests wait for it, how many sessions are open, how many turns
        were stopped before their end (a stop, a client gone)."""
        return {"busy": self.host.busy, "waiting": self.host.waiting, "sessions": len(self.host.sessions),
                "interrupted": self.host.interrupted}

    # -- running a turn ------------------------------------------------------------------------------------------------
    async def _json(self, request: Request) -> dict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ServeError(f"the request body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise ServeError("the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.model_id:
            raise ServeError(f"no model {model!r}; this server serves {self.model_id!r}", "model", status=404)
        return body

    def _request(self, body: dict, text: str, files: list[Upload], output: str, task: str | None) -> TurnRequest:
        """A turn with the request's decoding fields: OpenAI's and this server's extensions."""
        for key, allowed in [("n", (None, 1)), ("logprobs", (None, False)), ("tools", (None, []))]:
            if body.get(key) not in allowed:
                raise ServeError(f"{key}={json.dumps(body[key])} is not supported by this server", key)
        max_tokens = need(body, "max_completion_tokens", int)
        max_tokens = need(body, "max_tokens", int) if max_tokens is None else max_tokens
        seed = need(body, "seed", int)
        preset = need(body, "preset", str, self.host.defaults.settings)
        number = (int, float)
        return TurnRequest(text=text, files=files, output=output, settings=preset,
                           task=need(body, "task", str, task), constrained=need(body, "constrained", bool),
                           temperature=need(body, "temperature", number), top_p=need(body, "top_p", number),
                           max_new_tokens=max_tokens, seed=secrets.randbelow(2**31) if seed is None else seed,
                           num_beams=need(body, "num_beams", int, 1), min_new_tokens=need(body, "min_tokens", int))

    async def _run(self, request: Request, session: ChatSession, turn: TurnRequest,
                   on_token: Callable[[int], None] | None = None, finish: Callable[[TurnResult], Any] = lambda r: r
                   ) -> Any:
        """Run ``turn`` in a worker thread, stopping it at the next token if the client disconnects; the session is
        closed (its files removed) once ``finish`` has read the result."""
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def work() -> None:
            try:
                result: Any = finish(session.send(turn, cancelled=cancelled.is_set, on_token=on_token))
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(result))
            except BaseException as err:  # noqa: BLE001 - handed to the request's coroutine
                loop.call_soon_threadsafe(lambda failure=err: done.done() or done.set_exception(failure))
            finally:
                session.close()

        threading.Thread(target=work, daemon=True, name=f"anygpt-api-{session.id}").start()
        try:
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(done), 0.1)
                except TimeoutError:
                    if await request.is_disconnected():
                        cancelled.set()
        finally:
            if not done.done():  # disconnected or cancelled: the worker stops at its next token
                cancelled.set()

    def _stage(self, session: ChatSession, name: str, data: bytes, param: str) -> Upload:
        if len(data) > self.host.limits.max_bytes:
            raise TooLarge(f"{param} ({name}) is {size_text(len(data))}; uploads are limited to "
                           f"{size_text(self.host.limits.max_bytes)}", param)
        path = self.folder / session.id / f"{uuid.uuid4().hex[:8]}-{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return Upload(path, name)

    @staticmethod
    def _b64(data: Any, param: str) -> bytes:
        if not isinstance(data, str):
            raise ServeError(f"{param} must be a base64 string", param)
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ServeError(f"{param} is not valid base64", param) from None

    # -- chat ----------------------------------------------------------------------------------------------------------
    def _content(self, session: ChatSession, content: Any, param: str) -> tuple[str, list[Upload]]:
        """A message's content -> its text and its media as staged uploads."""
        if isinstance(content, str):
            return content, []
        if not isinstance(content, list):
            raise ServeError(f"{param} must be a string or a list of content parts", param)
        texts, files = [], []
        for i, part in enumerate(content):
            where = f"{param}[{i}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(need(part, "text", str, ""))
            elif kind == "image_url":
                url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
                if not isinstance(url, str) or not url.startswith("data:"):
                    raise ServeError(f"{where}: only data URLs (data:image/png;base64,...) are read; this server "
                                     "fetches nothing from the network", where)
                head, _, data = url[5:].partition(",")
                mime = head.split(";")[0].lower()
                if mime not in IMAGE_SUFFIXES or not head.endswith(";base64"):
                    raise ServeError(f"{where}: a base64 data URL of an image ({', '.join(IMAGE_SUFFIXES)}) is "
                                     f"needed, got data:{head[:40]}", where)
                files.append(self._stage(session, f"image-{i}{IMAGE_SUFFIXES[mime]}", self._b64(data, where), where))
            elif kind == "input_audio":
                audio = part.get("input_audio") if isinstance(part.get("input_audio"), dict) else {}
                fmt = audio.get("format")
                if fmt not in AUDIO_FORMATS:
                    raise ServeError(f"{where}: input_audio.format must be one of {AUDIO_FORMATS}, got {fmt!r}", where)
                data = self._b64(audio.get("data"), f"{where}.input_audio.data")
                files.append(self._stage(session, f"audio-{i}.{fmt}", data, where))
            else:
                raise ServeError(f"{where}: content parts of type {kind!r} are not read; use text, image_url or "
                                 "input_audio", where)
        return " ".join(t for t in texts if t), files

    def _conversation(self, session: ChatSession, body: dict, read_as: dict) -> tuple[str, list[Upload]]:
        """The messages -> the session's system prompt and history; returns the last user message."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ServeError("messages must be a non-empty list", "messages")
        turns: list[tuple[str, Any]] = []
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role in ("system", "developer"):
                text, files = self._content(session, message.get("content"), f"messages[{i}].content")
                if files:
                    raise ServeError(f"messages[{i}]: a system message is text only", f"messages[{i}].content")
                session.engine.system_prompt = text
            elif role in ("user", "assistant"):
                if turns and turns[-1][0] == role:
                    raise ServeError(f"messages[{i}]: two {role} messages in a row; user and assistant alternate",
                                     f"messages[{i}]")
                turns.append((role, (i, message)))
            else:
                raise ServeError(f"messages[{i}].role must be system, user or assistant, got {role!r}",
                                 f"messages[{i}].role")
        if not turns or turns[-1][0] != "user":
            raise ServeError("the last message must be the user's", "messages")
        if not session.host.keeps_history and len(turns) > 1:
            raise ServeError("this model uses the base template, which keeps no history: send one user message",
                             "messages")
        for role, (i, message) in turns[:-1]:
            if role == "user":
                text, files = self._content(session, message.get("content"), f"messages[{i}].content")
                parts = [text] if text else []
                for upload in files:
                    kind = session.check_upload(upload)
                    parts.append(Media(read_as.get(kind, session.host.readers(kind)[0]), str(upload.path)))
                session.engine.history.append(Turn("user", parts=parts, text=session.engine.user_message(parts)))
            else:
                session.engine.history.append(Turn("assistant", text=self._assistant_text(message, i)))
        i, last = turns[-1][1]
        return self._content(session, last.get("content"), f"messages[{i}].content")

    def _assistant_text(self, message: dict, i: int) -> str:
        audio = message.get("audio")
        if isinstance(audio, dict) and audio.get("id"):
            if audio["id"] not in self._recall:
                raise ServeError(f"messages[{i}].audio.id {audio['id']!r} is unknown here (replies are recalled "
                                 f"for the last {RECALLED})", f"messages[{i}].audio")
            return self._recall[audio["id"]]
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return content if isinstance(content, str) else ""

    def _remember(self, session: ChatSession) -> str:
        key = f"audio_{uuid.uuid4().hex}"
        self._recall[key] = session.engine.history[-1].text if session.engine.history else ""
        while len(self._recall) > RECALLED:
            self._recall.popitem(last=False)
        return key

    async def chat(self, request: Request) -> Response:
        body = await self._json(request)
        modalities = need(body, "modalities", list) or ["text"]
        wanted = [m for m in modalities if m != "text"]
        unknown = [m for m in wanted if m not in OUTPUTS or OUTPUTS[m] not in self.host.outputs]
        if unknown or len(wanted) > 1:
            raise ServeError(f"modalities {modalities}: ask for text and at most one of "
                             f"{[m for m, o in OUTPUTS.items() if o in self.host.outputs]}", "modalities")
        output = OUTPUTS[wanted[0]] if wanted else AUTO
        audio = need(body, "audio", dict) or {}
        stream = bool(need(body, "stream", bool, False))
        streams_audio = stream and output != AUTO and self.host.kinds.get(output) == "audio"
        if audio.get("format", "pcm16" if streams_audio else "wav") != ("pcm16" if streams_audio else "wav"):
            raise ServeError(f"audio.format {audio.get('format')!r}: this server writes wav, and pcm16 pieces when "
                             "the reply is streamed (stream: true)", "audio.format")
        every, window = need(audio, "chunk_codes", int, 25), need(audio, "window_codes", int)
        if every < 1 or (window is not None and window < 0):
            raise ServeError(f"audio.chunk_codes must be 1 or more and audio.window_codes 0 or more, got {every} and "
                             f"{window}", "audio")
        read_audio_as = need(body, "read_audio_as", str)
        if read_audio_as is not None and read_audio_as not in self.host.readers("audio"):
            raise ServeError(f"read_audio_as must be one of {self.host.readers('audio')}", "read_audio_as")
        session = self.host.session()
        try:
            voice = self._voice(session, audio.get("voice"))
            read_as = {"audio": read_audio_as} if read_audio_as else {}
            text, files = self._conversation(session, body, read_as)
            turn = self._request(body, text, files, output, None)
            turn.voice, turn.read_as = voice, read_as
        except BaseException:
            session.close()
            raise
        created, ident = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        budget = turn.max_new_tokens or self.host.decoding(output, turn.settings).max_new_tokens
        message_of = functools.partial(self._message, session, output=output, budget=budget)
        if not stream:
            message, finish, usage = await self._run(request, session, turn, finish=message_of)
            return JSONResponse({"id": ident, "object": "chat.completion", "created": created,
                                 "model": self.model_id, "choices": [{"index": 0, "message": message,
                                                                      "finish_reason": finish}], "usage": usage})
        include_usage = bool((need(body, "stream_options", dict) or {}).get("include_usage"))
        streamer = None
        if streams_audio:  # pieces decoded every `every` codes, with the decoder's context of the turn
            steps = self.host.decoding(output, turn.settings).extra.get("soundstorm_steps")
            streamer = AudioStreamer(session.engine, output, lambda wave: None, every=every, seed=turn.seed,
                                     voice=None if voice is None else str(voice.path), steps=steps,
                                     forced=session.engine.forced(output) == output, window=window)
        run = functools.partial(self._run, request, session, turn)  # run(on_token, finish)
        head = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": self.model_id}
        rate = None if streamer is None else self.host.engine.tokenizers[output].codec.sample_rate
        return StreamingResponse(chat_events(run, session, message_of, head, include_usage, streamer, rate),
                                 media_type="text/event-stream")

    def _voice(self, session: ChatSession, voice: Any) -> Upload | None:
        """``default`` (or none): the speech decoder's own voice; a data URL of a short recording: that voice."""
        if voice in (None, "default"):
            return None
        if isinstance(voice, str) and voice.startswith("data:audio/") and ";base64," in voice:
            head, _, data = voice[5:].partition(";base64,")
            suffix = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/mpeg": ".mp3", "audio/flac": ".flac"}
            if head in suffix:
                return self._stage(session, f"voice{suffix[head]}", self._b64(data, "audio.voice"), "audio.voice")
        raise ServeError(f"audio.voice {str(voice)[:40]!r}: this server has one named voice, 'default'; clone another "
                         "by passing a data URL of a few seconds of it (data:audio/wav;base64,...)", "audio.voice")

    def _message(self, session: ChatSession, result: TurnResult, output: str, budget: int) -> tuple[dict, str, dict]:
        """The reply as OpenAI's chat message (with ``media`` and ``notes`` added), its finish reason and usage."""
        media = []
        for m in result.media:  # a kind shown by a preview (a plugin's, arrays) carries it as base64 PNG too
            kind = MEDIA_KINDS[m.kind]
            png = preview_png(kind, m.path) if kind.html is None else None
            media.append({"modality": m.modality, "mime_type": kind.mime, "data": base64.b64encode(
                m.path.read_bytes()).decode(), **({"preview": base64.b64encode(png).decode()} if png else {})})
        message: dict[str, Any] = {"role": "assistant", "content": result.text or None, "refusal": None,
                                   "media": media, "notes": result.notes}
        spoken = next((m for m in media if m["mime_type"] == "audio/wav"), None)
        if output in ("speech", "music") or spoken is not None:
            message["audio"] = None if spoken is None else {
                "id": self._remember(session), "data": spoken["data"], "expires_at": int(time.time()) + 3600,
                "transcript": result.text}
        ids = result.reply.ids if result.reply is not None else []
        prompt = result.reply.prompt_tokens if result.reply is not None else 0
        finish = "length" if len(ids) >= budget else "stop"
        return message, finish, {"prompt_tokens": prompt, "completion_tokens": len(ids),
                                 "total_tokens": prompt + len(ids)}

    # -- speech, music, transcription, images --------------------------------------------------------------------------
    async def _media_turn(self, request: Request, body: dict, text: str, output: str, task: str,
                          upload: tuple[str, bytes, str] | None = None) -> tuple[TurnResult, list[bytes]]:
        """A one-turn request, with ``upload`` (name, data, request field) staged as its file; the result and its
        media files' bytes (read before the session's files go)."""
        if output not in self.host.outputs:
            raise ServeError(f"this model does not produce {output} (it produces {self.host.outputs[1:]})")
        session = self.host.session()
        try:
            files = [] if upload is None else [self._stage(session, *upload)]
            turn = self._request(body, text, files, output, task)
        except BaseException:
            session.close()
            raise
        return await self._run(request, session, turn, finish=self._read_media)

    @staticmethod
    def _read_media(result: TurnResult) -> tuple[TurnResult, list[bytes]]:
        return result, [item.path.read_bytes() for item in result.media]

    @staticmethod
    def _first(outcome: tuple[TurnResult, list[bytes]], what: str) -> bytes:
        result, files = outcome
        if not files:
            raise ServeError(f"the model produced no {what} for this input ({'; '.join(result.notes) or 'no span'}); "
                             "try another seed or more max_tokens", status=422)
        return files[0]

    async def speech(self, request: Request) -> Response:
        body = await self._json(request)
        text = need(body, "input", str)
        if not text:
            raise ServeError("input: the text to speak is missing", "input")
        if body.get("response_format", "wav") != "wav":
            raise ServeError(f"response_format {body['response_format']!r}: this server writes wav", "response_format")
        if body.get("speed", 1.0) != 1.0:
            raise ServeError("speed: only 1.0 is supported", "speed")
        if body.get("voice") not in (None, "default"):
            raise ServeError(f"voice {body['voice']!r}: this route speaks in the decoder's 'default' voice; clone "
                             "another through /v1/chat/completions (audio.voice as a data URL)", "voice")
        result = await self._media_turn(request, body, text, "speech", "text-to-speech")
        return Response(self._first(result, "speech"), media_type="audio/wav")

    async def music(self, request: Request) -> Response:
        """Extension: ``{"input": "a calm piano piece"}`` -> music as WAV."""
        body = await self._json(request)
        text = need(body, "input", str)
        if not text:
            raise ServeError("input: the description of the music is missing", "input")
        result = await self._media_turn(request, body, text, "music", "text-to-music")
        return Response(self._first(result, "music"), media_type="audio/wav")

    async def images(self, request: Request) -> Response:
        body = await self._json(request)
        prompt = need(body, "prompt", str)
        if not prompt:
            raise ServeError("prompt: the description of the image is missing", "prompt")
        if body.get("response_format", "b64_json") != "b64_json":
            raise ServeError("response_format: this server answers b64_json only (it keeps no files to link to)",
                             "response_format")
        result = await self._media_turn(request, body, prompt, "image", "text-to-image")
        return JSONResponse({"created": int(time.time()),
                             "data": [{"b64_json": base64.b64encode(self._first(result, "image")).decode()}]})

    async def transcription(self, request: Request) -> Response:
        try:
            form = await request.form(max_part_size=self.host.limits.max_bytes + 1)
        except Exception as err:  # a malformed body or a part over the limit, as the parser words it
            raise ServeError(f"the form could not be read: {err}", "file", status=413 if "size" in str(err) else 400
                             ) from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServeError("file: the audio file is missing (multipart field 'file')", "file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if fields.get("model") not in (None, self.model_id):
            raise ServeError(f"no model {fields['model']!r}; this server serves {self.model_id!r}", "model", 404)
        if fields.get("response_format", "json") not in ("json", "text"):
            raise ServeError("response_format must be json or text", "response_format")
        name = Path(upload.filename or "audio.wav").name
        result, _ = await self._media_turn(request, {}, fields.get("prompt", ""), AUTO, "speech-to-text",
                                           (name, await upload.read(), f"file ({name})"))
        if fields.get("response_format") == "text":
            return Response(result.text, media_type="text/plain")
        return JSONResponse({"text": result.text})


def mount(app: FastAPI, routes: OpenAIRoutes) -> None:
    """Serve ``routes`` under ``/v1`` of ``app`` (Gradio's server), ahead of the page's own routes."""
    app.mount("/v1", routes.app)
    app.router.routes.insert(0, app.router.routes.pop())
