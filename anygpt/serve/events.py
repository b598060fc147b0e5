"""The server-sent events of a streamed ``/v1/chat/completions`` reply: text token by token and, for a spoken (or
musical) reply, its audio in pieces as it is decoded (`anygpt.generation.streaming.AudioStreamer`).

Audio pieces come as OpenAI streams audio: ``delta.audio.data``, base64 16-bit little-endian PCM, mono, at
``delta.audio.sample_rate`` (an extension naming the model's rate); the last audio delta carries the reply's ``id``
(for recalling it in a later turn), ``expires_at`` and ``transcript``. Concatenated, the pieces are the whole reply.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from anygpt.generation.streaming import AudioStreamer, pcm16
from anygpt.serve.openai_schema import error_body
from anygpt.serve.session import ChatSession, TurnResult
from anygpt.serve.uploads import ServeError

# ``run(on_token, finish)``: the turn in its worker thread (`OpenAIRoutes._run`), its result through ``finish``
Runner = Callable[[Callable[[int], None], Callable[[TurnResult], Any]], Awaitable[Any]]


async def chat_events(run: Runner, session: ChatSession, message_of: Callable[[TurnResult], tuple[dict, str, dict]],
                      head: dict, include_usage: bool, audio: AudioStreamer | None = None,
                      sample_rate: int | None = None) -> AsyncIterator[str]:
    """The reply's events; with ``audio``, its pieces as they are decoded, between the text deltas."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int | bytes] = asyncio.Queue()

    def chunk(delta: dict, finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"

    def on_token(token: int) -> None:  # in the worker thread: the token first, then any audio piece it completes
        loop.call_soon_threadsafe(queue.put_nowait, token)
        if audio is not None:
            audio.feed(token)

    def finish(result: TurnResult) -> Any:
        if audio is not None:  # the rest of the audio, from the whole span's decode, before the final message
            audio.finish(result.reply)
        return message_of(result)

    if audio is not None:
        audio.emit = lambda wave: loop.call_soon_threadsafe(queue.put_nowait, pcm16(wave))
    task = asyncio.ensure_future(run(on_token, finish))
    ids: list[int] = []
    sent = ""
    try:
        yield chunk({"role": "assistant", "content": ""})
        while not (task.done() and queue.empty()):
            try:
                item = await asyncio.wait_for(queue.get(), 0.1)
            except TimeoutError:
                continue
            if isinstance(item, bytes):
                piece = {"data": base64.b64encode(item).decode(), "format": "pcm16", "sample_rate": sample_rate}
                yield chunk({"audio": piece})
                continue
            ids.append(item)
            text = session.engine.decode_text(ids)
            if text.startswith(sent) and len(text) > len(sent) and not text.endswith("\ufffd"):
                yield chunk({"content": text[len(sent):]})
                sent = text
        try:
            message, finish_reason, usage = task.result()
        except ServeError as err:
            yield f"data: {json.dumps(error_body(err.status, str(err), err.param))}\n\n"
            return
        final = message["content"] or ""
        if final != sent and final.startswith(sent):
            yield chunk({"content": final[len(sent):]})
        if audio is not None and message.get("audio"):  # streamed already: the id and transcript only
            message["audio"] = {k: v for k, v in message["audio"].items() if k != "data"}
            streamed = next((m for m in message["media"] if m["modality"] == audio.modality), None)
            message["media"] = [m for m in message["media"] if m is not streamed]
        extra = {k: message[k] for k in ("media", "notes", "audio") if message.get(k)}
        if extra:
            yield chunk(extra)
        yield chunk({}, finish_reason)
        if include_usage:
            yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        task.cancel()  # a client that went away: the turn stops at its next token
