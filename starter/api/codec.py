"""The codec endpoint: the Temporal Web UI shows ops decrypted payloads through it.

``POST /codec/decode`` and ``POST /codec/encode`` speak the UI's remote codec protocol: a JSON
body ``{"payloads": [{"metadata": {name: base64}, "data": base64}]}`` (protobuf JSON), answered
in the same shape, with the keys of this process (infra/codec.py). The UI names its namespace
in ``X-Namespace``; another namespace than the one this API serves is refused (403).

Only staff may read customer data: a bearer token (``Authorization: Bearer``), or, for a
browser, the codec session cookie that ``/codec/session`` sets after checking a token (the Web
UI cannot attach our tokens, but sends this cookie when its Codec Server setting "include
cross-origin credentials" is on). The cookie is HttpOnly, SameSite=Strict and limited to
``/codec``; the browser sends it from the UI because the UI and the API are the same site (the
same host, another port). CORS answers the UI origins (``Settings.codec_origins``) only, and
only under ``/codec``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from infra.codec import DecryptionError, UnknownKeyError, codec_for
from settings import Settings
from starter.api.auth import ServicesDep
from starter.api.bodies import JSON_TYPES, read_json_object
from starter.api.errors import ERRORS, ApiError
from starter.api.pages import PAGE_HEADERS, STATIC_DIR
from workflows.models import StaffMember

log = structlog.get_logger(__name__)

PREFIX = "/codec"
COOKIE = "casework_codec"
SESSION_SECONDS = 8 * 3600
SESSION_PAGE = STATIC_DIR / "codec-session.html"

router = APIRouter(prefix=PREFIX, tags=["codec"], responses=ERRORS)
_bearer = HTTPBearer(auto_error=False, description="A staff API token")


async def _staff_for(services: ServicesDep, token: str) -> StaffMember | None:
    return await run_in_threadpool(services.store.authenticate, token)


async def codec_staff(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffMember:
    """The staff member behind the bearer token, else behind the codec session cookie."""
    token = credentials.credentials.strip() if credentials is not None else ""
    token = token or request.cookies.get(COOKIE, "").strip()
    challenge = {"WWW-Authenticate": "Bearer"}
    if not token:
        raise ApiError(
            401,
            "unauthenticated",
            f"send Authorization: Bearer <token>, or sign in at {PREFIX}/session",
            headers=challenge,
        )
    staff = await _staff_for(services, token)
    if staff is None:
        raise ApiError(401, "unauthenticated", "the token is not valid", headers=challenge)
    request.state.staff_id = staff.id  # for the request log line
    return staff


CodecStaffDep = Annotated[StaffMember, Depends(codec_staff)]


def _same_namespace(services: ServicesDep, namespace: str | None) -> None:
    served = services.client.namespace
    if namespace and namespace != served:
        raise ApiError(
            403, "forbidden", f"this codec serves namespace {served!r}, not {namespace!r}"
        )


NamespaceHeader = Annotated[
    str | None, Header(alias="X-Namespace", description="The UI's namespace")
]


async def _payloads(request: Request) -> Payloads:
    body = await read_json_object(request, JSON_TYPES)
    try:
        return json_format.ParseDict(body, Payloads(), ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise ApiError(
            422, "validation_error", f"payloads: not Temporal payloads as JSON ({err})"
        ) from None


def _answer(payloads: Payloads) -> Response:
    answer = []
    for payload in payloads.payloads:
        body = json_format.MessageToDict(payload)
        # "data" even when empty (None is an empty binary/null payload): the UI reads it.
        answer.append({"metadata": body.get("metadata", {}), "data": body.get("data", "")})
    return Response(json.dumps({"payloads": answer}), media_type=JSON_TYPES[0])


_PAYLOADS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_TYPES[0]: {
                "schema": {
                    "type": "object",
                    "properties": {"payloads": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}


@router.post("/decode", openapi_extra=_PAYLOADS_BODY)
async def decode(
    request: Request, services: ServicesDep, staff: CodecStaffDep, namespace: NamespaceHeader = None
) -> Response:
    """Decrypt payloads (the Web UI's codec call); ones never encrypted come back as sent."""
    _same_namespace(services, namespace)
    payloads = await _payloads(request)
    codec = codec_for(services.settings)
    decoded = []
    for index, payload in enumerate(payloads.payloads):
        try:
            decoded.append(codec.decode_one(payload))
        except (UnknownKeyError, DecryptionError) as err:
            log.warning("codec_refused", staff_id=staff.id, error=type(err).__name__)
            raise ApiError(422, "cannot_decode", f"payloads[{index}]: {err}") from None
    return _answer(Payloads(payloads=decoded))


@router.post("/encode", openapi_extra=_PAYLOADS_BODY)
async def encode(
    request: Request, services: ServicesDep, _: CodecStaffDep, namespace: NamespaceHeader = None
) -> Response:
    """Encrypt payloads under the current key (the Web UI encodes what ops send from it)."""
    _same_namespace(services, namespace)
    payloads = await _payloads(request)
    encoded = await codec_for(services.settings).encode(list(payloads.payloads))
    return _answer(Payloads(payloads=encoded))


@router.get("/session", include_in_schema=False)
async def session_page() -> FileResponse:
    """A sign-in page for the browser that opens the Web UI."""
    return FileResponse(SESSION_PAGE, media_type="text/html", headers=PAGE_HEADERS)


@router.post("/session", status_code=204)
async def open_session(request: Request, response: Response, staff: CodecStaffDep) -> None:
    """Sign this browser in for the Web UI's codec calls: sets the codec session cookie (the
    token sent, HttpOnly, for SESSION_SECONDS), which the UI's requests then carry."""
    token = request.headers.get("authorization", "").removeprefix("Bearer").strip()
    if not token:
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    log.info("codec_session_opened", staff_id=staff.id)


@router.delete("/session", status_code=204)
async def close_session(response: Response) -> None:
    """Sign this browser out of the codec."""
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")


class CodecCors:
    """CORS for the Web UI's origins, under ``/codec`` only: no other route is opened to
    scripts of another origin. Credentials are allowed (the session cookie)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(settings.codec_origins),
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
