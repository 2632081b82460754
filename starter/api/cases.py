"""Reading cases and sending them events: ``/v1/cases``, ``/v1/cases/{id}``, its events.

A case reads as its procedure's state model (``registry``), so ``GET /v1/cases/{id}`` answers
one view per procedure, told apart by ``type``; the event route accepts exactly the
registry's events, each from the roles it names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, cast

import structlog
from fastapi import APIRouter, Query, Request
from pydantic import Field, TypeAdapter, ValidationError, create_model
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecution, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from registry import EVENTS, PROCEDURES, Procedure
from starter import (
    ActorNamed,
    EventForbidden,
    EventRefused,
    UnknownEvent,
    case_state,
    send_event,
)
from starter.api.auth import ServicesDep, StaffDep
from starter.api.bodies import JSON_TYPES, read_json_object
from starter.api.errors import (
    ERRORS,
    UNAVAILABLE,
    ApiError,
    invalid,
    not_running,
    snake,
    temporal_connect_failure,
)
from starter.api_models import (
    CaseEventAccepted,
    CaseList,
    CaseSummary,
    CaseView,
    ErrorBody,
    FieldError,
)
from workflows import visibility
from workflows.models import CaseStatus, CaseType

log = structlog.get_logger(__name__)

# A query waits for a worker; without one it would hang until the RPC deadline.
QUERY_TIMEOUT = timedelta(seconds=5)
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


def _view(procedure: Procedure[Any]) -> type[CaseView]:
    """``CaseView`` with the fields of the procedure's state, for cases of its type."""
    name = "".join(part.title() for part in procedure.case_type.value.split("_"))
    # ``type`` narrowed to this procedure's, so a response picks its view by it.
    only_this_type: Any = Literal[procedure.case_type.value]
    bases: Any = (CaseView, procedure.state)
    view: Any = create_model(
        f"{name}CaseView",
        __base__=bases,
        __doc__=f"A {procedure.case_type.value.replace('_', ' ')} case.",
        type=(only_this_type, ...),
    )
    return cast(type[CaseView], view)


CASE_VIEWS = tuple(_view(p) for p in PROCEDURES)
# One of the views, picked by the case's ``type``.
AnyCaseView: Any = Annotated[Union[CASE_VIEWS], Field(discriminator="type")]  # noqa: UP007
_ANY_CASE_VIEW: TypeAdapter[CaseView] = TypeAdapter(AnyCaseView)

router = APIRouter(responses=ERRORS)


@router.get("/v1/cases", tags=["cases"], responses={501: {"model": ErrorBody}})
async def list_cases(
    services: ServicesDep,
    staff: StaffDep,
    case_type: Annotated[CaseType | None, Query(alias="type")] = None,
    status: CaseStatus | None = None,
    order_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    customer_id: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    ra_number: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
    lot: Annotated[str | None, Query(pattern=IDENTIFIER)] = None,
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
        (visibility.LOT, lot),
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
        if token is not None and err.status not in UNAVAILABLE:
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
        lot=attributes.get(visibility.LOT),
        execution=execution.status.name.lower() if execution.status else "unknown",
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


@router.get(
    "/v1/cases/{case_id}",
    tags=["cases"],
    response_model=AnyCaseView,
    responses={404: {"model": ErrorBody}},
)
async def get_case(case_id: str, services: ServicesDep, staff: StaffDep) -> CaseView:
    """A case: status, step, approval, outcome and timeline, as the workflow holds them."""
    try:
        state = await case_state(services.client, case_id, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, RuntimeError, WorkflowQueryFailedError) as err:
        if isinstance(err, RuntimeError) and not temporal_connect_failure(err):
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
    return _ANY_CASE_VIEW.validate_python(
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
                        "properties": {"type": {"type": "string", "enum": sorted(EVENTS)}},
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

    Each type names the roles that may send it (`registry.EVENTS`); the caller is
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
        raise ApiError(status, snake(refused.kind), refused.message) from None
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            await not_running(services.client, case_id)
        raise
    log.info("case_event_sent", case_id=case_id, event_type=event_type, by=staff.id)
    return CaseEventAccepted(case_id=case_id, type=event_type)
