"""What the HTTP API accepts and answers, beyond the procedures' own request models.

Money leaves as a decimal string with two places ("750.00"): JSON numbers are floats in
most clients, and a refund must never be off by a cent.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints

from workflows.models import (
    ApprovalState,
    CaseState,
    CaseStatus,
    CaseType,
    DecisionKind,
    Note,
    Outcome,
)

MoneyOut = Annotated[
    Decimal, PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json")
]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(ApiModel):
    """Every error answer: a stable code for programs, a sentence for people."""

    error: str
    detail: str
    fields: list[FieldError] | None = None


class FieldError(ApiModel):
    field: str
    message: str


ErrorBody.model_rebuild()


# ---- starting cases ----------------------------------------------------------------------


class StartedCaseView(ApiModel):
    case_id: str
    workflow_id: str
    type: CaseType
    status: CaseStatus


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured mode; ``data`` is the procedure's request."""

    # Producers may add extension attributes; they are accepted and ignored.
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    type: NonEmpty
    datacontenttype: Literal["application/json"] | None = None
    subject: str | None = None
    time: datetime | None = None
    data: dict[str, Any]


# ---- reading cases -------------------------------------------------------------------------


class ApprovalView(ApprovalState):
    amount: MoneyOut


class OutcomeView(Outcome):
    amount: MoneyOut | None = None


class CaseView(CaseState):
    """The workflow's own state, plus when the case record was opened and last moved."""

    amount: MoneyOut | None
    approval: ApprovalView | None = None
    outcome: OutcomeView | None = None
    opened_at: datetime | None = None
    updated_at: datetime | None = None
    # "workflow" is live; "database" is the audit copy, served when Temporal cannot answer
    # (an outage, or a closed case past its retention).
    source: Literal["workflow", "database"] = "workflow"


class CaseSummary(ApiModel):
    """One line of a case listing, from Temporal visibility (search attributes only)."""

    case_id: str
    type: str | None
    status: str | None
    order_id: str | None
    customer_id: str | None
    ra_number: str | None = None
    lot: str | None = None  # complaints
    execution: str
    started_at: datetime
    closed_at: datetime | None


class CaseList(ApiModel):
    items: list[CaseSummary]
    next_page_token: str | None = Field(
        description="Pass as page_token for the next page; null on the last page."
    )


# ---- approvals -----------------------------------------------------------------------------


class PendingApproval(ApiModel):
    case_id: str
    type: str
    order_id: str
    customer_id: str
    amount: MoneyOut
    reason: str
    requested_by: str
    requested_at: datetime = Field(description="Waiting since.")
    remind_at: datetime
    escalate_at: datetime
    due_at: datetime


class ApprovalList(ApiModel):
    items: list[PendingApproval]


class DecisionBody(ApiModel):
    """The decider is whoever the token belongs to; there is no approver field to set."""

    decision: DecisionKind
    note: Note = ""


class CaseEventAccepted(ApiModel):
    case_id: str
    type: str
    accepted: Literal[True] = True


# ---- who am I, and health ---------------------------------------------------------------------


class Me(ApiModel):
    id: str
    name: str
    role: str
    approval_limit: MoneyOut
    acting_for: list[str]
    may_start_cases: bool
    may_decide: bool


class Health(ApiModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
    # Set when unavailable, so a 503 here reads like every other error.
    error: str | None = None
    detail: str | None = None
