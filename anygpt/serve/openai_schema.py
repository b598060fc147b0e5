"""The pieces of OpenAI's API `anygpt.serve.api` speaks: error bodies, field checks, media types, the key check."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse

from anygpt.serve.uploads import ServeError, size_text

OUTPUTS = {"audio": "speech", "music": "music", "image": "image"}  # ``modalities`` entry -> output modality
IMAGE_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/webp": ".webp",
                  "image/gif": ".gif", "image/bmp": ".bmp"}
AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg")
RECALLED = 512  # assistant replies kept for recall by audio id
CODES = {400: "invalid_request_error", 401: "invalid_api_key", 404: "not_found", 410: "session_closed",
         413: "file_too_large", 429: "rate_limit_exceeded", 499: "cancelled"}


def error_body(status: int, message: str, param: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": CODES.get(status)}}


def error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status)


def need(body: dict, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``body[key]`` (or ``default``), refused unless it is of ``kind`` (a JSON true is no number here)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    value = body.get(key, default)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds):
        raise ServeError(f"{key} must be {'/'.join(k.__name__ for k in kinds)}, got {json.dumps(value)[:60]}", key)
    return value


class Checks:
    """The API key and the body-size limit, checked before a route runs (plain ASGI around ``app``, so that a route
    still sees its client disconnect)."""

    def __init__(self, app: Callable, api_key: str | None, max_body: int) -> None:
        self.app, self.api_key, self.max_body = app, api_key, max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            refusal = None
            if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                refusal = error(401, "missing or wrong API key: send the server's --api_key as a Bearer token")
            length = headers.get("content-length", "")
            if refusal is None and length.isdigit() and int(length) > self.max_body:
                refusal = error(413, f"the request body is {size_text(int(length))}; this server takes at most "
                                     f"{size_text(self.max_body)}")
            if refusal is not None:
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)
