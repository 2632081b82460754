"""My work and the case page: what waits for the caller, done by me, a case's context, the
forms of the events a person may send, bulk approval and delegations, and the two pages.

Nothing here decides or sends an event on its own: bulk approval runs each case through the
single decision route, and the page's forms post to ``/v1/cases/{id}/events``, so the
validation and refusals are the API's own.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Query
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from activities.staff import StaffDirectory
from registry import EVENTS, Event
from starter.api.approvals import IDEMPOTENCY_KEY, decide_case
from starter.api.auth import ApproverDep, Services, ServicesDep, StaffDep
from starter.api.case_store import CaseStore
from starter.api.delegation_store import DelegationStore
from starter.api.errors import ERRORS, ApiError
from starter.api.pages import PAGE_HEADERS, STATIC_DIR
from starter.api.work_store import Sort, WorkFilter, WorkStore, event_title
from starter.api.work_views import (
    BulkDecisionBody,
    BulkResult,
    BulkResults,
    CaseContext,
    CaseMatches,
    DelegationBody,
    DelegationList,
    DonePage,
    EventForm,
    FormList,
    WorkPage,
)
from starter.api_models import DecisionBody, ErrorBody
from workflows.models import CaseStatus, CaseType, DecisionKind, StaffMember

log = structlog.get_logger(__name__)

# Decisions of one bulk request in flight at once: enough to finish a page quickly, few
# enough not to crowd the workers' verify_decision activities.
BULK_CONCURRENCY = 8
SEARCH = r"^[^\x00-\x1f]{1,64}$"

router = APIRouter(responses=ERRORS)


def _work(services: Services) -> WorkStore:
    return WorkStore(services.store.db, services.settings)


def _cases(services: Services) -> CaseStore:
    return CaseStore(services.store.db, services.settings)


def _delegations(services: Services) -> DelegationStore:
    return DelegationStore(services.store.db)


@router.get("/v1/work", tags=["work"])
async def my_work(
    services: ServicesDep,
    staff: StaffDep,
    procedure: CaseType | None = None,
    status: CaseStatus | None = None,
    min_amount: Annotated[Decimal | None, Query(ge=0, max_digits=12, decimal_places=2)] = None,
    max_amount: Annotated[Decimal | None, Query(ge=0, max_digits=12, decimal_places=2)] = None,
    q: Annotated[str | None, Query(pattern=SEARCH, description="case, order, customer, RA")] = None,
    sort: Sort = "deadline",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> WorkPage:
    """Open cases waiting for something the caller may do (a decision within their
    authority or one they stand in for, or an event their role sends), nearest deadline
    first (`sort=oldest`, `sort=amount`), a page at a time."""
    filters = WorkFilter(
        procedure=procedure,
        status=status,
        min_amount=min_amount,
        max_amount=max_amount,
        search=q,
        sort=sort,
        page=page,
        page_size=page_size,
    )
    return await run_in_threadpool(_work(services).open_work, staff, filters, datetime.now(UTC))


@router.get("/v1/work/done", tags=["work"])
async def done_by_me(
    services: ServicesDep,
    staff: StaffDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> DonePage:
    """What the caller did, from the audit trail, newest first."""
    return await run_in_threadpool(_work(services).done_by, staff.id, page, page_size)


def temporal_url(services: Services, case_id: str) -> str:
    base = services.settings.temporal_ui_url.rstrip("/") or (
        f"http://127.0.0.1:{services.settings.dev_server_ui_port}"
    )
    return f"{base}/namespaces/{services.client.namespace}/workflows/{case_id}"


@router.get("/v1/work/cases/{case_id}", tags=["work"], responses={404: {"model": ErrorBody}})
async def case_context(case_id: str, services: ServicesDep, staff: StaffDep) -> CaseContext:
    """Around a case: the order (lines, refunded, reserved), the customer, their other
    cases, linked cases, photos, emails sent, deadlines, and what the caller may do."""
    found = await run_in_threadpool(
        _cases(services).context,
        case_id,
        staff,
        datetime.now(UTC),
        temporal_url(services, case_id),
    )
    if found is None:
        raise ApiError(404, "not_found", f"no case {case_id}")
    return found


@router.get("/v1/work/find", tags=["work"])
async def find_cases(
    services: ServicesDep,
    staff: StaffDep,
    q: Annotated[str, Query(pattern=SEARCH, description="case, order, customer or RA")],
) -> CaseMatches:
    """Cases, open or closed, by case id, order, customer or RA number (exact first)."""
    return CaseMatches(items=await run_in_threadpool(_cases(services).find, q))


def event_form(event: Event) -> EventForm:
    """The event's body as a form needs it: the model's schema without the actor (the API
    fills it) and ``event_id`` (the page makes one per form, so a retry applies once)."""
    schema: dict[str, Any] = event.model.model_json_schema()
    hidden = {event.actor, "event_id"}
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in hidden}
    schema["required"] = [k for k in schema.get("required", []) if k not in hidden]
    return EventForm(
        name=event.name,
        title=event_title(event),
        roles=list(event.roles),
        kind=event.kind,
        schema=schema,
    )


@router.get("/v1/work/forms", tags=["work"])
async def forms(staff: StaffDep) -> FormList:
    """The events the caller's role may send, each with the schema of its form."""
    return FormList(
        items=[event_form(e) for _, e in sorted(EVENTS.items()) if staff.role in e.roles]
    )


# ---- bulk approval -------------------------------------------------------------------------


def _item_key(key: str | None, case_id: str) -> str | None:
    if key is None:
        return None
    return "bulk-" + hashlib.sha256(f"{key}\n{case_id}".encode()).hexdigest()[:40]


@router.post("/v1/work/approve", tags=["work"])
async def approve_many(
    body: BulkDecisionBody,
    services: ServicesDep,
    staff: ApproverDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=IDEMPOTENCY_KEY,
            description="Retrying with the same key answers each case's first decision again.",
        ),
    ] = None,
) -> BulkResults:
    """Approve each case as a single decision would (`POST /v1/cases/{id}/decision`): one
    result per case, a refusal never stopping the others."""
    gate = asyncio.Semaphore(BULK_CONCURRENCY)
    decision = DecisionBody(decision=DecisionKind.APPROVE, note=body.note)

    async def one(case_id: str) -> BulkResult:
        async with gate:
            try:
                approval = await decide_case(
                    case_id, decision, services, staff, _item_key(idempotency_key, case_id)
                )
            except ApiError as err:
                return BulkResult(
                    case_id=case_id,
                    ok=False,
                    status=err.status,
                    error=err.body.error,
                    detail=err.body.detail,
                )
            except Exception as err:  # one case failing must not fail the others
                log.warning("bulk_decision_failed", case_id=case_id, error=type(err).__name__)
                return BulkResult(
                    case_id=case_id,
                    ok=False,
                    status=503,
                    error="failed",
                    detail="the case did not answer; check it before trying again",
                )
            return BulkResult(case_id=case_id, ok=True, status=200, approval=approval)

    unique = list(dict.fromkeys(body.case_ids))
    results = await asyncio.gather(*(one(case_id) for case_id in unique))
    approved = sum(1 for r in results if r.ok)
    log.info("bulk_approval", by=staff.id, approved=approved, refused=len(results) - approved)
    return BulkResults(items=list(results), approved=approved, refused=len(results) - approved)


# ---- delegations -----------------------------------------------------------------------------


def _manager(staff: StaffMember) -> None:
    if staff.role != "manager":
        raise ApiError(403, "forbidden", f"role {staff.role!r} may not name a delegate")


@router.get("/v1/delegations", tags=["work"])
async def list_delegations(services: ServicesDep, staff: StaffDep) -> DelegationList:
    """Who stands in for the caller, and for whom the caller stands in (not yet ended)."""
    given, received = await run_in_threadpool(
        _delegations(services).delegations, staff.id, datetime.now(UTC)
    )
    return DelegationList(given=given, received=received)


@router.post("/v1/delegations", tags=["work"], status_code=201)
async def add_delegation(
    body: DelegationBody, services: ServicesDep, staff: StaffDep
) -> DelegationList:
    """A manager away names who decides in their place for a period (within the
    delegate's own approval limit, as the approval gate rules)."""
    _manager(staff)
    now = datetime.now(UTC)
    if body.starts_at.tzinfo is None or body.ends_at.tzinfo is None:
        raise ApiError(422, "validation_error", "starts_at, ends_at: give a time zone offset")
    if body.ends_at <= body.starts_at:
        raise ApiError(422, "validation_error", "ends_at: must be after starts_at")
    if body.ends_at <= now:
        raise ApiError(422, "validation_error", "ends_at: must be in the future")
    work = _delegations(services)
    refusal = await run_in_threadpool(work.delegate_refusal, staff.id, body.delegate_id)
    if refusal:
        raise ApiError(422, "validation_error", f"delegate_id: {refusal}")
    await run_in_threadpool(
        StaffDirectory(services.store.db).delegate,
        staff.id,
        body.delegate_id,
        body.starts_at,
        body.ends_at,
    )
    log.info("delegation_named", by=staff.id, delegate=body.delegate_id)
    given, received = await run_in_threadpool(work.delegations, staff.id, now)
    return DelegationList(given=given, received=received)


@router.post(
    "/v1/delegations/{delegation_id}/end", tags=["work"], responses={404: {"model": ErrorBody}}
)
async def end_delegation(
    delegation_id: int, services: ServicesDep, staff: StaffDep
) -> DelegationList:
    """End one of the caller's delegations now (back early)."""
    now = datetime.now(UTC)
    work = _delegations(services)
    if not await run_in_threadpool(work.end_delegation, delegation_id, staff.id, now):
        raise ApiError(404, "not_found", f"no delegation {delegation_id} of yours")
    given, received = await run_in_threadpool(work.delegations, staff.id, now)
    return DelegationList(given=given, received=received)


# ---- the pages -------------------------------------------------------------------------------


@router.get("/work", include_in_schema=False)
async def work_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "work.html", headers=PAGE_HEADERS)


@router.get("/case", include_in_schema=False)
async def case_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "case.html", headers=PAGE_HEADERS)
