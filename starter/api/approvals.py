"""Approvals: what a manager may decide, and the decision itself (My work and the case page
take it through this route too)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Header
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError, RPCStatusCode

from starter import DecisionRefused, decide
from starter.api.auth import ApproverDep, Services, ServicesDep
from starter.api.errors import ERRORS, ApiError, invalid, not_running
from starter.api_models import ApprovalList, ApprovalView, DecisionBody, ErrorBody
from workflows.models import ApprovalStatus, Decision

log = structlog.get_logger(__name__)

IDEMPOTENCY_KEY = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,59}$"

router = APIRouter(responses=ERRORS)


@router.get("/v1/approvals", tags=["approvals"])
async def list_approvals(services: ServicesDep, staff: ApproverDep) -> ApprovalList:
    """Cases awaiting a decision the caller may take, oldest first."""
    items = await run_in_threadpool(services.store.pending_approvals, staff.id)
    return ApprovalList(items=items)


REFUSALS = {"NotAuthorized": (403, "not_authorized"), "NoDecisionPending": (409, "no_decision")}


async def _decided_before_closing(services: Services, case_id: str) -> None:
    """A closed case that was decided refuses a late decision as it did while it ran: whether
    the second decision lands just before or just after the case closes must not matter."""
    status = await run_in_threadpool(services.store.approval_status, case_id)
    if status is not None and status != ApprovalStatus.PENDING:
        raise ApiError(
            409, "no_decision", f"no decision is pending on this case (already {status})"
        )


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
        status, error = REFUSALS.get(refused.kind, (409, "decision_refused"))
        raise ApiError(status, error, refused.message) from None
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            await _decided_before_closing(services, case_id)
            await not_running(services.client, case_id)
        raise
    log.info("decision_taken", case_id=case_id, decision=body.decision.value, by=staff.id)
    return ApprovalView.model_validate(approval.model_dump())
