"""What My work and the case page answer: work items, a case's context, forms, bulk results
and delegations. Money leaves as a decimal string (as everywhere in the API) with the
currency beside it; instants as ISO UTC, each deadline with a label on the business clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from starter.api_models import ApiModel, ApprovalView, MoneyOut
from workflows.models import Identifier, Note


class Clock(ApiModel):
    """A deadline of the case: when (UTC), and how far off in business time, as people read it."""

    name: str = Field(description='What happens then: "escalates", "expires", an SLA clock')
    due_at: datetime
    label: str = Field(description='"escalates in 3 business hours"')
    local: str = Field(description='The instant on the business clock, "Fri 27 Nov, 14:00 EST"')
    overdue: bool
    warning: bool = Field(
        default=False, description="Past its warning (75% of an SLA, an approval's reminder)"
    )


class WorkAction(ApiModel):
    """Something the caller may do on the case now: decide its approval, or send an event."""

    kind: Literal["decision", "event"]
    name: str = Field(description='"decision", or the event type for /v1/cases/{id}/events')
    title: str


class ApprovalAsk(ApiModel):
    amount: MoneyOut
    reason: str
    requested_by: str
    requested_at: datetime
    escalate_at: datetime
    due_at: datetime
    kind: str
    rule: str | None


class WorkItem(ApiModel):
    case_id: str
    type: str
    status: str
    step: str
    order_id: str
    customer_id: str
    customer_name: str | None
    vip: bool
    amount: MoneyOut | None
    ra_number: str | None
    requested_by: str
    waiting_since: datetime
    clock: Clock | None
    actions: list[WorkAction]
    approval: ApprovalAsk | None
    standing_in_for: list[str] = Field(
        description="Whom the caller decides for here (delegations), when not in their own role"
    )


class WorkPage(ApiModel):
    items: list[WorkItem]
    total: int
    page: int
    page_size: int
    currency: str
    timezone: str
    procedures: list[str] = Field(description="What the procedure filter takes")
    statuses: list[str] = Field(description="What the status filter takes (open statuses)")


class DoneItem(ApiModel):
    """Something the caller did: a line of a case's audit trail with them as the actor."""

    case_id: str
    type: str
    at: datetime
    event: str
    detail: dict[str, str]
    status: str = Field(description="The case's status now")
    order_id: str
    amount: MoneyOut | None


class DonePage(ApiModel):
    items: list[DoneItem]
    total: int
    page: int
    page_size: int


class OrderLineView(ApiModel):
    sku: str
    description: str
    quantity: int
    unit_price: MoneyOut


class OrderFacts(ApiModel):
    order_id: str
    status: str
    total: MoneyOut
    refunded: MoneyOut
    reserved: MoneyOut
    refundable: MoneyOut
    lines: list[OrderLineView]


class CustomerFacts(ApiModel):
    id: str
    name: str
    vip: bool


class CaseLine(ApiModel):
    case_id: str
    type: str
    status: str
    amount: MoneyOut | None
    opened_at: datetime


class CaseMatches(ApiModel):
    items: list[CaseLine]


class EmailLine(ApiModel):
    """An email the case queued; the address is masked (the page never needs it whole)."""

    template: str
    subject: str
    to: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class CaseContext(ApiModel):
    """What a person needs around a case: the order and its money, the customer, the
    customer's other cases, linked cases, photos, emails, clocks, and what they may do."""

    case_id: str
    type: str
    status: str
    order: OrderFacts | None
    customer: CustomerFacts | None
    earlier_cases: list[CaseLine]
    linked_cases: list[CaseLine]
    photos: list[str]
    emails: list[EmailLine]
    clocks: list[Clock]
    actions: list[WorkAction]
    temporal_url: str
    currency: str
    timezone: str


class EventForm(ApiModel):
    """An event the caller may send, with the JSON schema its form is generated from (the
    actor field left out: the API fills it from the token)."""

    name: str
    title: str
    roles: list[str]
    kind: Literal["update", "signal"]
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")


class FormList(ApiModel):
    items: list[EventForm]


class BulkDecisionBody(ApiModel):
    case_ids: list[Identifier] = Field(min_length=1, max_length=100)
    note: Note = ""


class BulkResult(ApiModel):
    case_id: str
    ok: bool
    status: int = Field(description="The status a single decision on this case answered")
    error: str | None = None
    detail: str | None = None
    approval: ApprovalView | None = None


class BulkResults(ApiModel):
    items: list[BulkResult]
    approved: int
    refused: int


class DelegationBody(ApiModel):
    delegate_id: Identifier
    starts_at: datetime
    ends_at: datetime


class DelegationView(ApiModel):
    id: int
    staff_id: str
    delegate_id: str
    starts_at: datetime
    ends_at: datetime
    active: bool


class DelegationList(ApiModel):
    given: list[DelegationView] = Field(description="Who stands in for the caller")
    received: list[DelegationView] = Field(description="Whom the caller stands in for")
