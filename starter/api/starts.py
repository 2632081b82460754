"""Opening cases: ``POST /v1/{path}`` per registered procedure, and CloudEvents.

Starts are idempotent twice over: the ``api_requests`` table remembers which body a
``request_id`` (or CloudEvent ``source`` + ``id``) came with, and the case id derives from
the request id, so Temporal's own id uniqueness catches whatever slips past the table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from registry import BY_EVENT_TYPE, PROCEDURES, Procedure
from starter import case_id_for, start_case
from starter.api.auth import BackendDep, Services, ServicesDep
from starter.api.bodies import CLOUDEVENTS_TYPES, JSON_TYPES, fingerprint, read_json_object
from starter.api.errors import ERRORS, ApiError, invalid
from starter.api.store import IdempotencyKey
from starter.api_models import CloudEvent, ErrorBody, FieldError, StartedCaseView
from workflows.models import CaseStatus

log = structlog.get_logger(__name__)


async def open_case(
    services: Services,
    procedure: Procedure[Any],
    payload: dict[str, Any],
    *,
    event: IdempotencyKey | None = None,
    prefix: str = "",
) -> JSONResponse:
    """Validate, claim the idempotency key(s), start; 202 when new, 200 for a repeat."""
    named = [name for name in procedure.handed_over if name in payload]
    if named:
        field = ".".join(part for part in (prefix, named[0]) if part)
        message = "set by the case that hands the work over, never by a caller"
        raise ApiError(
            422,
            "validation_error",
            f"{field}: {message}",
            fields=[FieldError(field=field, message=message)],
        )
    try:
        request = procedure.request.model_validate(payload, extra="forbid")
    except ValidationError as err:
        raise invalid(err, prefix=prefix) from None
    refusal = procedure.check(request, services.settings)
    if refusal is not None:
        field = ".".join(part for part in (prefix, procedure.check_field) if part)
        raise ApiError(
            422,
            "validation_error",
            f"{field}: {refusal}",
            fields=[FieldError(field=field, message=refusal)],
        )
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
        started = await start_case(
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


def add_start_routes(app: FastAPI) -> None:
    """``POST /v1/{path}`` for every registered procedure, its body documented by schema
    (bodies are read by hand, to hash them and keep Decimals exact; see app.openapi)."""
    for procedure in PROCEDURES:
        app.add_api_route(
            f"/v1/{procedure.path}",
            _start_endpoint(procedure),
            methods=["POST"],
            tags=["cases"],
            status_code=202,
            response_model=StartedCaseView,
            responses={
                **ERRORS,
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


router = APIRouter(responses=ERRORS)


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
    procedure = BY_EVENT_TYPE.get(event.type)
    if procedure is None:
        known = ", ".join(sorted(BY_EVENT_TYPE))
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
