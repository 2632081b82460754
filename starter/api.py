"""The HTTP API: backends open cases and send events, managers decide approvals.

``create_app(client)`` builds the app over an already connected Temporal client, so tests,
the dev runner and any embedding process share one way in. Every answer is JSON; money is a
decimal string; every error is ``{"error", "detail"}`` with the right status and no trace.

Starts are idempotent twice over: the ``api_requests`` table remembers which body a
``request_id`` (or CloudEvent ``source`` + ``id``) came with, and the case id derives from
the request id, so Temporal's own id uniqueness catches whatever slips past the table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Generic, NoReturn, Protocol, TypeVar, cast

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from sqlalchemy import select, text
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
from temporalio.client import Client, WorkflowExecution, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.staff import StaffDirectory
from infra.db import ApiRequest, Approval, AuditRecord, Case, Database, Delegation
from infra.logs import configure_logging
from settings import Settings, get_settings
from starter import (
    ActorNamed,
    CaseNotAnswering,
    DecisionRefused,
    EventForbidden,
    EventRefused,
    StartedCase,
    UnknownEvent,
    case_exists,
    case_id_for,
    connect,
    decide,
    send_event,
    start_refund,
    start_return,
)
from starter.api_models import (
    ApprovalList,
    ApprovalView,
    CaseEventAccepted,
    CaseList,
    CaseSummary,
    CaseView,
    CloudEvent,
    DecisionBody,
    ErrorBody,
    FieldError,
    Health,
    Me,
    PendingApproval,
    StartedCaseView,
)
from workflows import visibility
from workflows.models import (
    ApprovalStatus,
    CaseState,
    CaseStatus,
    CaseType,
    Decision,
    RefundRequest,
    ReturnRequest,
    StaffMember,
    TimelineEntry,
)

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
# A query or update waits for a worker; without one it would hang until the RPC deadline.
QUERY_TIMEOUT = timedelta(seconds=5)
HEALTH_TIMEOUT = timedelta(seconds=2)
JSON_TYPES = ("application/json",)
CLOUDEVENTS_TYPES = ("application/cloudevents+json",)
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
IDEMPOTENCY_KEY = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,59}$"
_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}


# ---- the procedures a backend may start ----------------------------------------------------

R = TypeVar("R", bound=BaseModel)
R_contra = TypeVar("R_contra", bound=BaseModel, contravariant=True)


class Starter(Protocol[R_contra]):
    def __call__(
        self, client: Client, request: R_contra, *, task_queue: str | None = None
    ) -> Awaitable[StartedCase]: ...


@dataclass(frozen=True)
class Procedure(Generic[R]):
    """``POST /v1/{path}`` and CloudEvents of type ``event_type`` start it with ``start``."""

    path: str
    event_type: str
    case_type: CaseType
    request: type[R]
    start: Starter[R]

    def __post_init__(self) -> None:
        # The idempotency key and the case id both derive from it.
        if "request_id" not in self.request.model_fields:
            raise TypeError(f"{self.request.__name__} has no request_id field")


# One line per procedure; its endpoint, event type and docs follow from it.
PROCEDURES: tuple[Procedure[Any], ...] = (
    Procedure("refunds", "refund.requested", CaseType.REFUND, RefundRequest, start_refund),
    Procedure("returns", "return.requested", CaseType.RETURN, ReturnRequest, start_return),
)


# ---- errors --------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body = ErrorBody(error=error, detail=detail, fields=fields)
        self.headers = headers


def error_response(
    status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def invalid(err: ValidationError | RequestValidationError, *, prefix: str = "") -> ApiError:
    """A 422 naming every bad field; the rejected values are not echoed (they may be PII)."""
    fields = []
    for problem in err.errors():
        location = [str(part) for part in problem["loc"]]
        if isinstance(err, RequestValidationError) and location:
            location = location[1:]  # "body", "query", "path" or "header"
        name = ".".join([prefix, *location] if prefix else location) or prefix or "body"
        fields.append(FieldError(field=name, message=str(problem["msg"])))
    detail = "; ".join(f"{f.field}: {f.message}" for f in fields)
    return ApiError(422, "validation_error", detail, fields=fields)


def _temporal_connect_failure(err: Exception) -> bool:
    # The SDK reports an unreachable server on a lazy or dropped connection this way.
    return isinstance(err, RuntimeError) and str(err).startswith("Failed client connect")


# ---- the database side (synchronous: always called on a worker thread) ---------------------


@dataclass(frozen=True)
class Claim:
    case_id: str
    new: bool
    conflict: bool


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.staff = StaffDirectory(db)

    def ping(self) -> None:
        with self.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def authenticate(self, token: str) -> StaffMember | None:
        return self.staff.authenticate(token)

    def acting_for(self, staff_id: str, at: datetime) -> list[str]:
        """Whom ``staff_id`` stands in for at ``at`` (delegations)."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Delegation.staff_id).where(
                    Delegation.delegate_id == staff_id,
                    Delegation.starts_at <= at,
                    Delegation.ends_at > at,
                )
            )
            return sorted(set(rows))

    def claim(self, key: str, body_hash: str, case_id: str, at: datetime) -> Claim:
        """Record ``key`` for ``case_id``, or say how an earlier request with it compares."""
        try:
            with self.db.transaction() as session:
                existing = session.get(ApiRequest, key)
                if existing is None:
                    session.add(
                        ApiRequest(key=key, body_hash=body_hash, case_id=case_id, created_at=at)
                    )
                    return Claim(case_id, new=True, conflict=False)
                return _compare(existing, body_hash)
        except IntegrityError:
            # A concurrent request with the same key committed first: answer as a repeat.
            with self.db.transaction() as session:
                existing = session.get(ApiRequest, key)
                if existing is None:
                    raise
                return _compare(existing, body_hash)

    def release(self, keys: list[IdempotencyKey]) -> None:
        """Forget claims whose start failed (matching the body, so only this request's)."""
        if not keys:
            return
        with self.db.transaction() as session:
            for key in keys:
                row = session.get(ApiRequest, key.key)
                if row is not None and row.body_hash == key.body_hash:
                    session.delete(row)

    def case_status(self, case_id: str) -> CaseStatus | None:
        with self.db.transaction() as session:
            status = session.scalar(select(Case.status).where(Case.id == case_id))
            return None if status is None else CaseStatus(status)

    def case_times(self, case_id: str) -> tuple[datetime, datetime] | None:
        with self.db.transaction() as session:
            case = session.get(Case, case_id)
            return None if case is None else (case.opened_at, case.updated_at)

    def case_record(self, case_id: str) -> CaseView | None:
        """The case as its audit copy tells it, for when the workflow cannot answer."""
        with self.db.transaction() as session:
            case = session.get(Case, case_id)
            if case is None:
                return None
            approval = session.get(Approval, case_id)
            trail = session.scalars(
                select(AuditRecord).where(AuditRecord.case_id == case_id).order_by(AuditRecord.seq)
            ).all()
            return CaseView(
                case_id=case.id,
                type=CaseType(case.type),
                status=CaseStatus(case.status),
                step=case.step,
                order_id=case.order_id,
                customer_id=case.customer_id,
                amount=case.amount,
                requested_by=case.requested_by,
                approval=None if approval is None else _approval_view(approval),
                timeline=tuple(
                    TimelineEntry(at=r.at, event=r.event, actor=r.actor, detail=r.detail)
                    for r in trail
                ),
                opened_at=case.opened_at,
                updated_at=case.updated_at,
                source="database",
            )

    def pending_approvals(self, staff_id: str) -> list[PendingApproval]:
        """Pending approvals ``staff_id`` may decide, oldest first."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(Approval, Case)
                .join(Case, Case.id == Approval.case_id)
                .where(Approval.status == ApprovalStatus.PENDING.value)
                .order_by(Approval.requested_at, Approval.case_id)
            ).all()
            # Eligibility is a JSON list; filtering it here keeps one query for both backends.
            return [
                PendingApproval(
                    case_id=case.id,
                    type=case.type,
                    order_id=case.order_id,
                    customer_id=case.customer_id,
                    amount=approval.amount,
                    reason=approval.reason,
                    requested_by=approval.requested_by,
                    requested_at=approval.requested_at,
                    remind_at=approval.remind_at,
                    escalate_at=approval.escalate_at,
                    due_at=approval.due_at,
                )
                for approval, case in rows
                if staff_id in approval.eligible_approvers
            ]


def _compare(existing: ApiRequest, body_hash: str) -> Claim:
    return Claim(existing.case_id, new=False, conflict=existing.body_hash != body_hash)


def _approval_view(row: Approval) -> ApprovalView:
    return ApprovalView(
        status=ApprovalStatus(row.status),
        amount=row.amount,
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        remind_at=row.remind_at,
        escalate_at=row.escalate_at,
        due_at=row.due_at,
        eligible_approvers=tuple(row.eligible_approvers),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        note=row.note,
    )


# ---- request plumbing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    client: Client
    store: Store
    settings: Settings
    by_event_type: dict[str, Procedure[Any]]


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(services)]
_bearer = HTTPBearer(auto_error=False, description="A staff API token")


async def current_staff(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffMember:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or not credentials.credentials.strip():
        raise ApiError(
            401, "unauthenticated", "send Authorization: Bearer <token>", headers=challenge
        )
    staff = await run_in_threadpool(services.store.authenticate, credentials.credentials.strip())
    if staff is None:
        raise ApiError(401, "unauthenticated", "the token is not valid", headers=challenge)
    request.state.staff_id = staff.id  # for the request log line
    return staff


StaffDep = Annotated[StaffMember, Depends(current_staff)]


async def backend_staff(staff: StaffDep) -> StaffMember:
    if staff.role != "backend":
        raise ApiError(403, "forbidden", f"role {staff.role!r} may not start cases")
    return staff


async def approver_staff(staff: StaffDep, services: ServicesDep) -> StaffMember:
    """An approver role, or anyone standing in for someone today (delegation)."""
    if staff.role in services.settings.approver_roles:
        return staff
    if await run_in_threadpool(services.store.acting_for, staff.id, datetime.now(UTC)):
        return staff
    raise ApiError(403, "forbidden", f"role {staff.role!r} may not decide approvals")


BackendDep = Annotated[StaffMember, Depends(backend_staff)]
ApproverDep = Annotated[StaffMember, Depends(approver_staff)]


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
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


async def not_running(client: Client, case_id: str) -> NoReturn:
    """The answer for a message to a case Temporal reports NOT_FOUND: closed, or unknown."""
    if await case_exists(client, case_id):
        raise ApiError(409, "case_closed", f"case {case_id} is closed and takes no more messages")
    raise ApiError(404, "not_found", f"no case {case_id}")


# ---- opening cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    body_hash: str
    label: str  # how a 409 names it


async def open_case(
    services: Services,
    procedure: Procedure[Any],
    payload: dict[str, Any],
    *,
    event: IdempotencyKey | None = None,
    prefix: str = "",
) -> JSONResponse:
    """Validate, claim the idempotency key(s), start; 202 when new, 200 for a repeat."""
    try:
        request = procedure.request.model_validate(payload, extra="forbid")
    except ValidationError as err:
        raise invalid(err, prefix=prefix) from None
    request_id = str(request.model_dump()["request_id"])
    case_id = case_id_for(procedure.case_type, request_id)
    request_key = IdempotencyKey(
        key=f"{procedure.path}:{request_id}",
        body_hash=fingerprint(request.model_dump()),
        label=f"request_id {request_id!r}",
    )
    store, now = services.store, datetime.now(UTC)
    claimed: list[IdempotencyKey] = []
    for key in [event, request_key] if event else [request_key]:
        claim = await run_in_threadpool(store.claim, key.key, key.body_hash, case_id, now)
        if claim.conflict:
            await run_in_threadpool(store.release, claimed)
            raise ApiError(
                409,
                "conflict",
                f"{key.label} was already used with different content (case {claim.case_id})",
            )
        if claim.new:
            claimed.append(key)
    try:
        # On a repeat too: a no-op for a running or closed case, and it completes the start
        # when an earlier attempt was cut off between Temporal's answer and ours.
        started = await procedure.start(
            services.client, request, task_queue=services.settings.task_queue
        )
    except Exception:
        # Not accepted: forget what this attempt claimed, so that its retry is a first try.
        await run_in_threadpool(store.release, claimed)
        raise
    # New only if this very call made Temporal start it: of concurrent repeats exactly one
    # did, and a case opened another way (the CLI, the typed client) is a repeat too.
    first_time = not started.existing
    recorded: CaseStatus | None = None
    if not first_time:
        recorded = await run_in_threadpool(store.case_status, started.case_id)
    log.info(
        "case_started" if first_time else "case_request_repeated",
        case_id=started.case_id,
        procedure=procedure.path,
        via="event" if event else "request",
    )
    view = StartedCaseView(
        case_id=started.case_id,
        workflow_id=started.workflow_id,
        type=procedure.case_type,
        status=recorded or _known_status(started.status),
    )
    return JSONResponse(
        view.model_dump(mode="json"),
        status_code=202 if first_time else 200,
        headers={"Location": f"/v1/cases/{started.case_id}"},
    )


def _known_status(status: str) -> CaseStatus:
    return CaseStatus(status) if status in set(CaseStatus) else CaseStatus.RECEIVED


def _start_endpoint(procedure: Procedure[Any]) -> Callable[..., Awaitable[JSONResponse]]:
    async def start(request: Request, services: ServicesDep, staff: BackendDep) -> JSONResponse:
        payload = await read_json_object(request, JSON_TYPES)
        return await open_case(services, procedure, payload)

    start.__name__ = f"start_{procedure.path.replace('-', '_')}"
    start.__doc__ = (
        f"Open a {procedure.case_type.value.replace('_', ' ')} case (backend role). The same "
        "request_id with the same body answers 200 with the existing case; with a different "
        "body, 409."
    )
    return start


# ---- routes ----------------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "Missing or invalid token"),
        (403, "The caller's role or authority does not allow it"),
        (422, "Invalid input; `fields` names each problem"),
        (503, "Temporal or the database is unreachable"),
    )
}
router = APIRouter(responses=_ERRORS)


@router.get("/healthz", tags=["health"], response_model_exclude_none=True)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", tags=["health"], responses={503: {"model": Health}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Temporal and the database both answer."""
    checks: dict[str, str] = {}
    try:
        healthy = await services.client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        checks["temporal"] = "ok" if healthy else "unhealthy"
    except Exception as err:  # any failure to answer means not ready
        log.warning("readiness_temporal_failed", error=str(err))
        checks["temporal"] = "unreachable"
    try:
        await run_in_threadpool(services.store.ping)
        checks["database"] = "ok"
    except Exception as err:
        log.warning("readiness_database_failed", error=type(err).__name__)
        checks["database"] = "unreachable"
    failing = [f"{name} {state}" for name, state in checks.items() if state != "ok"]
    if failing:
        body = Health(
            status="unavailable", checks=checks, error="not_ready", detail=", ".join(failing)
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return JSONResponse(Health(status="ok", checks=checks).model_dump(exclude_none=True))


@router.get("/v1/me", tags=["staff"])
async def me(staff: StaffDep, services: ServicesDep) -> Me:
    """Who the token belongs to and what it may do."""
    acting_for = await run_in_threadpool(services.store.acting_for, staff.id, datetime.now(UTC))
    return Me(
        id=staff.id,
        name=staff.name,
        role=staff.role,
        approval_limit=staff.approval_limit,
        acting_for=acting_for,
        may_start_cases=staff.role == "backend",
        may_decide=staff.role in services.settings.approver_roles or bool(acting_for),
    )


@router.post(
    "/v1/events",
    tags=["cases"],
    status_code=202,
    response_model=StartedCaseView,
    responses={
        200: {"model": StartedCaseView, "description": "A redelivered event: the existing case"},
        409: {"model": ErrorBody, "description": "The same event id with different content"},
        415: {"model": ErrorBody, "description": "Not application/cloudevents+json"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                CLOUDEVENTS_TYPES[0]: {"schema": {"$ref": "#/components/schemas/CloudEvent"}}
            },
        }
    },
)
async def post_event(request: Request, services: ServicesDep, staff: BackendDep) -> JSONResponse:
    """Open a case from a CloudEvents 1.0 event (structured mode); `type` picks the
    procedure, `data` is its request, and `source` + `id` make redelivery safe."""
    payload = await read_json_object(request, CLOUDEVENTS_TYPES)
    try:
        event = CloudEvent.model_validate(payload)
    except ValidationError as err:
        raise invalid(err) from None
    procedure = services.by_event_type.get(event.type)
    if procedure is None:
        known = ", ".join(sorted(services.by_event_type))
        raise ApiError(
            422, "unknown_event_type", f"unknown event type {event.type!r} (known: {known})"
        )
    source_and_id = hashlib.sha256(f"{event.source}\n{event.id}".encode()).hexdigest()
    key = IdempotencyKey(
        key=f"event:{source_and_id}",
        body_hash=fingerprint({"type": event.type, "data": event.data}),
        label=f"event {event.id!r} from {event.source!r}",
    )
    return await open_case(services, procedure, event.data, event=key, prefix="data")


@router.get("/v1/cases", tags=["cases"], responses={501: {"model": ErrorBody}})
async def list_cases(
    services: ServicesDep,
    staff: StaffDep,
    case_type: Annotated[CaseType | None, Query(alias="type")] = None,
    status: CaseStatus | None = None,
    order_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    customer_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    ra_number: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> CaseList:
    """Cases by search attributes, newest first, a page at a time (Temporal visibility)."""
    # Values are enums or match IDENTIFIER, so none can break out of its quotes.
    clauses = [f"{visibility.CASE_TYPE.name} IS NOT NULL"]
    for key, value in (
        (visibility.CASE_TYPE, case_type),
        (visibility.CASE_STATUS, status),
        (visibility.ORDER_ID, order_id),
        (visibility.CUSTOMER_ID, customer_id),
        (visibility.RA_NUMBER, ra_number),
    ):
        if value is not None:
            clauses.append(f"{key.name} = '{value}'")
    query = " AND ".join(clauses)
    token = _read_page_token(page_token, query) if page_token else None
    pages = services.client.list_workflows(
        query, page_size=page_size, next_page_token=token, rpc_timeout=QUERY_TIMEOUT
    )
    try:
        await pages.fetch_next_page()
    except RPCError as err:
        if token is not None and err.status not in _UNAVAILABLE:
            # Sealed by us, yet refused: expired, or from before a server change.
            raise ApiError(422, "validation_error", "page_token: expired or invalid") from None
        raise
    next_token = pages.next_page_token
    return CaseList(
        items=[_summary(execution) for execution in pages.current_page or []],
        next_page_token=_page_token(next_token, query) if next_token else None,
    )


def _page_seal(raw: bytes, query: str) -> bytes:
    return hashlib.sha256(b"casework-page\n" + query.encode() + b"\n" + raw).digest()[:12]


def _page_token(raw: bytes, query: str) -> str:
    """Temporal's token, sealed with the query it continues: a token Temporal would choke on
    (a typo, a forgery, another filter's) is refused here instead of failing there."""
    return base64.urlsafe_b64encode(_page_seal(raw, query) + raw).decode()


def _read_page_token(token: str, query: str) -> bytes:
    try:
        sealed = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError):
        sealed = b""
    seal, raw = sealed[:12], sealed[12:]
    if not raw or not hmac.compare_digest(seal, _page_seal(raw, query)):
        raise ApiError(
            422,
            "validation_error",
            "page_token: not a token this API gave for these filters",
            fields=[FieldError(field="page_token", message="not a token from this listing")],
        )
    return raw


def _summary(execution: WorkflowExecution) -> CaseSummary:
    attributes = execution.typed_search_attributes
    return CaseSummary(
        case_id=execution.id,
        type=attributes.get(visibility.CASE_TYPE),
        status=attributes.get(visibility.CASE_STATUS),
        order_id=attributes.get(visibility.ORDER_ID),
        customer_id=attributes.get(visibility.CUSTOMER_ID),
        ra_number=attributes.get(visibility.RA_NUMBER),
        execution=execution.status.name.lower() if execution.status else "unknown",
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


@router.get("/v1/cases/{case_id}", tags=["cases"], responses={404: {"model": ErrorBody}})
async def get_case(case_id: str, services: ServicesDep, staff: StaffDep) -> CaseView:
    """A case: status, step, approval, outcome and timeline, as the workflow holds them."""
    handle = services.client.get_workflow_handle(case_id)
    try:
        state = await handle.query("state", result_type=CaseState, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, RuntimeError, WorkflowQueryFailedError) as err:
        if isinstance(err, RuntimeError) and not _temporal_connect_failure(err):
            raise
        # Whatever kept the workflow from answering (past retention, Temporal down, no worker
        # polling, "no poller seen", a failing workflow task), the audit copy still knows.
        record = await run_in_threadpool(services.store.case_record, case_id)
        if record is not None:
            log.info("case_served_from_database", case_id=case_id, why=str(err))
            return record
        raise _unanswered_query(case_id, err) from None
    times = await run_in_threadpool(services.store.case_times, case_id)
    opened_at, updated_at = times or (None, None)
    return CaseView.model_validate(
        {**state.model_dump(), "opened_at": opened_at, "updated_at": updated_at}
    )


def _unanswered_query(case_id: str, err: Exception) -> ApiError:
    """The answer for a case neither the workflow nor the database could show."""
    if isinstance(err, WorkflowQueryFailedError):
        return ApiError(404, "not_found", f"{case_id} is not a case ({err.message})")
    if isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND:
        return ApiError(404, "not_found", f"no case {case_id}")
    if not isinstance(err, RPCError) or err.status is RPCStatusCode.UNAVAILABLE:
        log.warning("temporal_unavailable", error=str(err))
        return ApiError(503, "temporal_unavailable", "Temporal is not answering; retry")
    # Temporal knows the case but no worker answered for it (and it is not recorded yet).
    log.warning("case_not_answering", case_id=case_id, status=err.status.name)
    return ApiError(
        503,
        "case_not_answering",
        f"case {case_id} did not answer (is a worker running?) and has no record yet; retry",
    )


@router.get("/v1/approvals", tags=["approvals"])
async def list_approvals(services: ServicesDep, staff: ApproverDep) -> ApprovalList:
    """Cases awaiting a decision the caller may take, oldest first."""
    items = await run_in_threadpool(services.store.pending_approvals, staff.id)
    return ApprovalList(items=items)


_REFUSALS = {"NotAuthorized": (403, "not_authorized"), "NoDecisionPending": (409, "no_decision")}


@router.post(
    "/v1/cases/{case_id}/decision",
    tags=["approvals"],
    responses={
        404: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "No decision is pending"},
    },
)
async def decide_case(
    case_id: str,
    body: DecisionBody,
    services: ServicesDep,
    staff: ApproverDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=IDEMPOTENCY_KEY,
            description="Retrying with the same key answers the first decision again.",
        ),
    ] = None,
) -> ApprovalView:
    """Approve or reject; the answer is the workflow's own, as a Temporal update."""
    try:
        decision = Decision(
            approver_id=staff.id,
            decision=body.decision,
            note=body.note,
            event_id=f"{staff.id}:{idempotency_key}" if idempotency_key else None,
        )
    except ValidationError as err:
        raise invalid(err) from None
    try:
        approval = await decide(services.client, case_id, decision)
    except DecisionRefused as refused:
        status, error = _REFUSALS.get(refused.kind, (409, "decision_refused"))
        raise ApiError(status, error, refused.message) from None
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            await not_running(services.client, case_id)
        raise
    log.info("decision_taken", case_id=case_id, decision=body.decision.value, by=staff.id)
    return ApprovalView.model_validate(approval.model_dump())


@router.post(
    "/v1/cases/{case_id}/events",
    tags=["cases"],
    status_code=202,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                JSON_TYPES[0]: {
                    "schema": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"type": "string"}},
                        "additionalProperties": True,
                        "example": {"type": "store_credit_chosen", "event_id": "evt-1"},
                    }
                }
            },
        }
    },
)
async def post_case_event(
    case_id: str, request: Request, services: ServicesDep, staff: StaffDep
) -> CaseEventAccepted:
    """Deliver an event the case waits for (`type` plus that event's fields), as the caller.

    Each type names the roles that may send it (`starter.CASE_EVENTS`); the caller is
    recorded as the actor, and a relaying service names the person in `on_behalf_of`."""
    payload = await read_json_object(request, JSON_TYPES)
    event_type = payload.pop("type", None)
    if not isinstance(event_type, str):
        message = "Field required" if event_type is None else "Input should be a string"
        raise ApiError(
            422,
            "validation_error",
            f"type: {message}",
            fields=[FieldError(field="type", message=message)],
        )
    try:
        await send_event(services.client, case_id, event_type, payload, sender=staff)
    except UnknownEvent as err:
        raise ApiError(422, "unknown_event_type", str(err)) from None
    except EventForbidden as err:
        raise ApiError(403, "forbidden", str(err)) from None
    except ActorNamed as err:
        raise ApiError(
            422,
            "validation_error",
            str(err),
            fields=[FieldError(field=err.field, message=str(err).partition(": ")[2])],
        ) from None
    except ValidationError as err:
        raise invalid(err) from None
    except EventRefused as refused:
        # The case's own answer: an RA it never issued is not found, the rest conflict.
        status = 404 if refused.kind == "UnknownRA" else 409
        raise ApiError(status, _snake(refused.kind), refused.message) from None
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            await not_running(services.client, case_id)
        raise
    log.info("case_event_sent", case_id=case_id, event_type=event_type, by=staff.id)
    return CaseEventAccepted(case_id=case_id, type=event_type)


def _snake(kind: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind).lower()  # UnknownRA -> unknown_ra


# ---- the approvals page ----------------------------------------------------------------------

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/approvals", include_in_schema=False)
async def approvals_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "approvals.html", headers=PAGE_HEADERS)


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/approvals")


# ---- errors as JSON, and one log line per request -------------------------------------------


async def _api_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, ApiError)
    return JSONResponse(
        err.body.model_dump(exclude_none=True), status_code=err.status, headers=err.headers
    )


async def _request_invalid(_: Request, err: Exception) -> Response:
    assert isinstance(err, RequestValidationError)
    return await _api_error(_, invalid(err))


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


async def _http_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, StarletteHTTPException)
    error = _HTTP_ERRORS.get(err.status_code, "http_error")
    return error_response(err.status_code, error, str(err.detail), headers=err.headers)


async def _temporal_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, RPCError)
    if err.status is RPCStatusCode.UNIMPLEMENTED:
        return error_response(501, "not_implemented", f"Temporal cannot do this: {err.message}")
    if err.status in _UNAVAILABLE:
        log.warning("temporal_unavailable", status=err.status.name, error=err.message)
        return error_response(503, "temporal_unavailable", "Temporal is not answering; retry")
    log.error("temporal_error", status=err.status.name, error=err.message)
    return error_response(502, "temporal_error", f"Temporal refused the call ({err.status.name})")


async def _case_not_answering(_: Request, err: Exception) -> Response:
    assert isinstance(err, CaseNotAnswering)
    log.warning("case_not_answering", case_id=err.case_id)
    return error_response(
        503,
        "case_not_answering",
        f"{err}: check the case before sending anything new; a retry with the same "
        "Idempotency-Key (decisions) or event_id (events) cannot apply twice",
    )


async def _database_error(_: Request, err: Exception) -> Response:
    log.warning("database_unavailable", error=type(err).__name__)
    return error_response(503, "database_unavailable", "the database is not answering; retry")


async def _timeout(_: Request, err: Exception) -> Response:
    return error_response(503, "timeout", "a dependency did not answer in time; retry")


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
                if _temporal_connect_failure(err):
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
                    path=scope["path"],
                    status=status,
                    staff=scope.get("state", {}).get("staff_id"),
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )


# ---- the app ---------------------------------------------------------------------------------


def create_app(
    client: Client, *, database_url: str | None = None, settings: Settings | None = None
) -> FastAPI:
    """The API and the approvals page over ``client``; the caller owns the client."""
    settings = settings or get_settings()
    db = Database(database_url or settings.database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        db.dispose()

    app = FastAPI(
        title="casework",
        version="1",
        summary="Customer-service procedures as durable cases",
        description=(
            "Backends open cases and send events; managers decide approvals. Money is a "
            'decimal string ("750.00"). Errors are `{"error", "detail"}`.'
        ),
        lifespan=lifespan,
        # /docs is served below from packaged assets (the default loads them from a CDN and
        # is blank offline); ReDoc has no packaged build, so it is left out.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = Services(
        client=client,
        store=Store(db),
        settings=settings,
        by_event_type={p.event_type: p for p in PROCEDURES},
    )
    for procedure in PROCEDURES:
        app.add_api_route(
            f"/v1/{procedure.path}",
            _start_endpoint(procedure),
            methods=["POST"],
            tags=["cases"],
            status_code=202,
            response_model=StartedCaseView,
            responses={
                **_ERRORS,
                200: {"model": StartedCaseView, "description": "A repeat: the existing case"},
                409: {"model": ErrorBody, "description": "The request_id was used differently"},
                415: {"model": ErrorBody, "description": "Not application/json"},
            },
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON_TYPES[0]: {
                            "schema": {"$ref": f"#/components/schemas/{procedure.request.__name__}"}
                        }
                    },
                }
            },
        )
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(CaseNotAnswering, _case_not_answering)
    for failure in (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError):
        app.add_exception_handler(failure, _database_error)
    app.add_exception_handler(TimeoutError, _timeout)
    app.add_middleware(BodyLimits)
    app.add_middleware(RequestLog)

    def openapi() -> dict[str, Any]:
        # Start bodies are read by hand (to hash them and to keep Decimals exact), so their
        # schemas are added here for /docs.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            models: list[type[BaseModel]] = [CloudEvent, *(p.request for p in PROCEDURES)]
            for model in models:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_production_app() -> Starlette:
    """For ``uvicorn --factory starter.api:create_production_app``: logging as configured,
    and Temporal (``TEMPORAL_*`` environment) connected when the server starts."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def connect_then_serve(outer: Starlette) -> AsyncIterator[None]:
        api = create_app(await connect(), settings=settings)
        outer.router.routes.append(Mount("/", app=api))
        async with api.router.lifespan_context(api):
            yield

    return Starlette(lifespan=connect_then_serve)
