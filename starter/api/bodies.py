"""Request bodies: bounded before any route reads them, parsed exactly, fingerprinted.

``BodyLimits`` (ASGI middleware) counts every body as it arrives and refuses one too large or
nested too deep; ``read_json_object`` parses what a route was sent with numbers as Decimal,
so no amount passes through a float; ``fingerprint`` is what idempotency compares.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, time
from decimal import Decimal
from enum import Enum
from typing import Any, NoReturn

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starter.api.errors import ApiError, error_response

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
JSON_TYPES = ("application/json",)
CLOUDEVENTS_TYPES = ("application/cloudevents+json",)


async def read_json_object(request: Request, media_types: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object; numbers become Decimal, so no amount passes through float."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in media_types:
        raise ApiError(415, "unsupported_media_type", f"send Content-Type: {media_types[0]}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
    except ValueError as err:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object")
    return value


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def fingerprint(value: Any) -> str:
    """A hash of a request that ignores key order and trailing zeros ("750" == "750.00")."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, date | time):  # datetimes are dates
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


class BodyLimits:
    """Every request body is read here before any route sees it: counted as it arrives and
    refused at MAX_BODY_BYTES without reading on (a chunked upload has no Content-Length to
    check first), and a JSON body nesting deeper than MAX_JSON_DEPTH is refused before a
    parser recurses into it. Routes then read the bounded body as usual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        too_large = error_response(
            413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes"
        )
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        json_like = not media_type or media_type.endswith(b"json")
        if body and json_like and json_depth(body) > MAX_JSON_DEPTH:
            too_deep = error_response(
                422, "json_too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
            )
            await too_deep(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later: the disconnect, when it comes

        await self.app(scope, replay, send)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_A_BRACKET = re.compile(rb"[^\[\]{}]+")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body``, brackets in strings aside
    (a cheap scan: no parser recursion, whatever the input)."""
    brackets = _NOT_A_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
