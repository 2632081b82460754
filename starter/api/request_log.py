"""One structured log line per request, an X-Request-Id on every answer, and a JSON 500
instead of a stack trace for anything the error handlers did not expect (ASGI middleware)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starter.api.decision_links import mask_path
from starter.api.errors import error_response, temporal_connect_failure

log = structlog.get_logger(__name__)


class RequestLog:
    """One structured line per request, an X-Request-Id on every answer, and a JSON 500
    instead of a stack trace for anything the handlers above did not expect."""

    _REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if self._REQUEST_ID.match(incoming) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 500
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                answered = True
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as err:
                if temporal_connect_failure(err):
                    log.warning("temporal_unreachable", error=str(err))
                    response = error_response(
                        503, "temporal_unavailable", "Temporal is not answering; retry"
                    )
                else:
                    log.exception("request_failed")
                    response = error_response(
                        500, "internal_error", f"unexpected error (request {request_id})"
                    )
                if answered:
                    raise
                await response(scope, receive, send_with_id)
            finally:
                log.info(
                    "http_request",
                    method=scope["method"],
                    path=mask_path(scope["path"]),  # a decision link's token is a credential
                    status=status,
                    staff=scope.get("state", {}).get("staff_id"),
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
