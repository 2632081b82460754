"""Every procedure the product runs, declared once.

A procedure is its workflow, the request that opens it, the state its ``state`` query answers
and the events a running case accepts. The worker registers ``PROCEDURES``' workflows, the
typed client (``starter``) starts and messages cases through them, and the HTTP API and the
CLI build their routes, OpenAPI entries and commands from them: adding a procedure is one
entry here (docs/adding-a-procedure.md), not an edit to each entry point.

What a declaration is lives in ``registry.declaration``. This package sits between the
entry points and the workflows: it imports workflows and models, and nothing in workflows/,
activities/ or infra/ imports it (tests/test_architecture.py).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from pydantic import BaseModel
from temporalio.common import Priority, SearchAttributePair

from registry.declaration import CliField, Event, Procedure, R
from settings import Settings
from workflows import visibility
from workflows.billing_dispute import BillingDisputeWorkflow
from workflows.billing_dispute_models import (
    BillingDisputeRequest,
    BillingDisputeState,
    DisputeEscalation,
    DisputeResolution,
)
from workflows.cancellation import CancellationWorkflow
from workflows.cancellation_models import CancellationRequest, CancellationState, ReturnAnswer
from workflows.complaint_models import (
    ComplaintRequest,
    ComplaintState,
    CustomerResponse,
    QaFindings,
    SupervisorAction,
)
from workflows.complaints import ComplaintWorkflow
from workflows.freight_claim import FreightClaimWorkflow
from workflows.freight_claim_models import (
    AccountingClosing,
    CarrierSettlement,
    FreightClaimRequest,
    FreightClaimState,
)
from workflows.lot_watch import LotWatchWorkflow
from workflows.models import CaseState, CaseStatus, CaseType, RefundRequest, StoreCreditChoice
from workflows.order_change import OrderChangeWorkflow
from workflows.order_change_models import ChangeAnswer, OrderChangeRequest, OrderChangeState
from workflows.refund import RefundWorkflow
from workflows.return_models import (
    InspectionResult,
    PackageReceived,
    RaState,
    ReturnRequest,
    ReturnState,
)
from workflows.returns import ReturnWorkflow
from workflows.rush_models import CarrierReport, FeeAnswer, RushOrderRequest, RushState
from workflows.rush_orders import RushOrderWorkflow

__all__ = ["CliField", "Event", "Procedure"]

# ---- the events ---------------------------------------------------------------------------

STORE_CREDIT_CHOSEN = Event(
    "store_credit_chosen",
    StoreCreditChoice,
    roles=("agent", "backend"),
    actor="chosen_by",
    signal="choose_store_credit",
)
PACKAGE_RECEIVED = Event(
    "package_received",
    PackageReceived,
    roles=("warehouse",),
    actor="received_by",
    signal="package_received",
    update="receive_package",
    result=RaState,
    awaited_in=(CaseStatus.AWAITING_RETURN,),
)
INSPECTION_COMPLETED = Event(
    "inspection_completed",
    InspectionResult,
    roles=("warehouse",),
    actor="inspected_by",
    signal="inspection_completed",
    update="complete_inspection",
    result=ReturnState,
    awaited_in=(CaseStatus.INSPECTING,),
)
QA_FINDINGS = Event(
    "qa_findings",
    QaFindings,
    roles=("qa",),
    actor="reported_by",
    signal="qa_findings",
    awaited_in=(
        CaseStatus.ESCALATED,
        CaseStatus.RESOLVING,
        CaseStatus.FOLLOW_UP,
        CaseStatus.AWAITING_CUSTOMER,
    ),
    awaited_once=True,
)
CUSTOMER_RESPONSE = Event(
    "customer_response",
    CustomerResponse,
    roles=("agent", "backend"),
    actor="recorded_by",
    signal="customer_response",
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)
SUPERVISOR_ACTION = Event(
    "supervisor_action",
    SupervisorAction,
    roles=("supervisor", "manager"),
    actor="taken_by",
    signal="supervisor_action",
    awaited_in=(CaseStatus.ESCALATED,),
    awaited_after="supervisor_escalation",
)
FEE_ACCEPTED = Event(
    "fee_accepted",
    FeeAnswer,
    roles=("agent", "backend"),
    actor="answered_by",
    signal="fee_accepted",
    update="accept_fee",
    result=RushState,
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)
FEE_DECLINED = Event(
    "fee_declined",
    FeeAnswer,
    roles=("agent", "backend"),
    actor="answered_by",
    signal="fee_declined",
    update="decline_fee",
    result=RushState,
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)
DELIVERED = Event(
    "delivered",
    CarrierReport,
    roles=("backend",),
    actor="reported_by",
    signal="delivered",
    awaited_in=(CaseStatus.IN_TRANSIT, CaseStatus.LATE),
)
DELIVERY_ATTEMPTED = Event(
    "delivery_attempted",
    CarrierReport,
    roles=("backend",),
    actor="reported_by",
    signal="delivery_attempted",
    awaited_in=(CaseStatus.IN_TRANSIT, CaseStatus.LATE),
)
CHANGE_ACCEPTED = Event(
    "change_accepted",
    ChangeAnswer,
    roles=("agent", "backend"),
    actor="answered_by",
    signal="change_accepted",
    update="accept_change",
    result=OrderChangeState,
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)
CHANGE_DECLINED = Event(
    "change_declined",
    ChangeAnswer,
    roles=("agent", "backend"),
    actor="answered_by",
    signal="change_declined",
    update="decline_change",
    result=OrderChangeState,
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)

DISPUTE_RESOLVED = Event(
    "dispute_resolved",
    DisputeResolution,
    roles=("agent", "supervisor", "manager"),
    actor="resolved_by",
    signal="dispute_resolved",
    update="resolve_dispute",
    result=BillingDisputeState,
    awaited_in=(CaseStatus.REVIEWING,),
)
DISPUTE_ESCALATED = Event(
    "dispute_escalated",
    DisputeEscalation,
    roles=("agent",),
    actor="escalated_by",
    signal="dispute_escalated",
    update="escalate_dispute",
    result=BillingDisputeState,
    awaited_in=(CaseStatus.REVIEWING,),
)
ACCOUNTING_ANSWER = Event(
    "accounting_answer",
    DisputeResolution,
    roles=("accounting",),
    actor="resolved_by",
    signal="accounting_answer",
    update="answer_dispute",
    result=BillingDisputeState,
    awaited_in=(CaseStatus.WITH_ACCOUNTING,),
)
RETURN_REQUESTED = Event(
    "return_requested",
    ReturnAnswer,
    roles=("agent", "backend"),
    actor="answered_by",
    signal="return_requested",
    update="request_return",
    result=CancellationState,
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)
RETURN_DECLINED = Event(
    "return_declined",
    ReturnAnswer,
    roles=("agent", "backend"),
    actor="answered_by",
    signal="return_declined",
    update="decline_return",
    result=CancellationState,
    awaited_in=(CaseStatus.AWAITING_CUSTOMER,),
)
CARRIER_SETTLED = Event(
    "carrier_settled",
    CarrierSettlement,
    roles=("backend",),
    actor="reported_by",
    signal="carrier_settled",
    awaited_in=(CaseStatus.AWAITING_CARRIER, CaseStatus.WITH_ACCOUNTING),
)
ACCOUNTING_CLOSED = Event(
    "accounting_closed",
    AccountingClosing,
    roles=("accounting",),
    actor="closed_by",
    signal="accounting_closed",
    update="close_claim",
    result=FreightClaimState,
    awaited_in=(CaseStatus.WITH_ACCOUNTING,),
)


# ---- the procedures -----------------------------------------------------------------------


def _return_item(text: str) -> dict[str, object]:
    """SKU=QUANTITY, or a bare SKU for one of it."""
    sku, equals, quantity = text.partition("=")
    if not equals:
        return {"sku": text, "quantity": 1}
    try:
        return {"sku": sku, "quantity": int(quantity)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not SKU=QUANTITY: {text!r}") from None


def _return_summary(request: ReturnRequest) -> str:
    count = sum(item.quantity for item in request.items)
    return f"Return of {count} item{'s' if count != 1 else ''} for order {request.order_id}"


REFUND: Procedure[RefundRequest] = Procedure(
    case_type=CaseType.REFUND,
    workflow=RefundWorkflow,
    request=RefundRequest,
    state=CaseState,
    path="refunds",
    event_type="refund.requested",
    title="start a refund case",
    summary=lambda r: f"Refund ${r.amount:,.2f} for order {r.order_id}",
    events=(STORE_CREDIT_CHOSEN,),
)

RETURN: Procedure[ReturnRequest] = Procedure(
    case_type=CaseType.RETURN,
    workflow=ReturnWorkflow,
    request=ReturnRequest,
    state=ReturnState,
    path="returns",
    event_type="return.requested",
    title="start a return case (an RA number is issued)",
    summary=_return_summary,
    events=(STORE_CREDIT_CHOSEN, PACKAGE_RECEIVED, INSPECTION_COMPLETED),
    cli={
        "items": CliField(_return_item, "SKU=QUANTITY", "an item to return (repeat for each sku)")
    },
    handed_over=("linked_case_id",),  # the cancellation that offered the return
)

COMPLAINT: Procedure[ComplaintRequest] = Procedure(
    case_type=CaseType.COMPLAINT,
    workflow=ComplaintWorkflow,
    request=ComplaintRequest,
    state=ComplaintState,
    path="complaints",
    event_type="complaint.received",
    title="record a quality complaint (escalated, resolved, followed up)",
    summary=lambda r: (
        f"{r.category.value.replace('_', ' ').capitalize()} complaint: "
        f"{r.sku} lot {r.lot}, order {r.order_id}"
    ),
    events=(STORE_CREDIT_CHOSEN, QA_FINDINGS, CUSTOMER_RESPONSE, SUPERVISOR_ACTION),
    cli={"photos": CliField(str, "URL", "a photo's http(s) URL (repeat for each, at most 10)")},
    search_attributes=lambda r: (SearchAttributePair(visibility.LOT, r.lot),),
)

RUSH: Procedure[RushOrderRequest] = Procedure(
    case_type=CaseType.RUSH,
    workflow=RushOrderWorkflow,
    request=RushOrderRequest,
    state=RushState,
    path="rush-orders",
    event_type="rush_order.requested",
    title="expedite an order (a rush fee quote the customer accepts)",
    summary=lambda r: (
        f"Rush order {r.order_id}"
        + (f" by {r.requested_delivery_date:%Y-%m-%d}" if r.requested_delivery_date else "")
    ),
    events=(FEE_ACCEPTED, FEE_DECLINED, DELIVERED, DELIVERY_ATTEMPTED),
    cli={
        "requested_delivery_date": CliField(
            date.fromisoformat, "YYYY-MM-DD", "the date the customer needs it by"
        )
    },
    # Ahead of the backlog: the customer's acceptance window and the cut-off are hours.
    priority=Priority(priority_key=2),
)

ORDER_CHANGE: Procedure[OrderChangeRequest] = Procedure(
    case_type=CaseType.ORDER_CHANGE,
    workflow=OrderChangeWorkflow,
    request=OrderChangeRequest,
    state=OrderChangeState,
    path="order-changes",
    event_type="order.change_requested",
    title="change an order before it ships (address, quantity or item)",
    # Never the address: the Web UI shows this line to everyone who can see the case.
    summary=lambda r: f"{r.kind.value.capitalize()} change to order {r.order_id}",
    events=(CHANGE_ACCEPTED, CHANGE_DECLINED),
)

BILLING_DISPUTE: Procedure[BillingDisputeRequest] = Procedure(
    case_type=CaseType.BILLING_DISPUTE,
    workflow=BillingDisputeWorkflow,
    request=BillingDisputeRequest,
    state=BillingDisputeState,
    path="billing-disputes",
    event_type="billing.dispute_opened",
    title="open a billing dispute (invoice breakdown, resolution or Accounting)",
    summary=lambda r: (
        f"Billing dispute on order {r.order_id}"
        + (f" (${r.disputed_amount:,.2f})" if r.disputed_amount is not None else "")
    ),
    events=(DISPUTE_RESOLVED, DISPUTE_ESCALATED, ACCOUNTING_ANSWER),
)


def _unknown_cancel_reason(request: CancellationRequest, settings: Settings) -> str | None:
    if request.reason in settings.cancel_reasons:
        return None
    return f"unknown reason {request.reason!r}; one of: {', '.join(settings.cancel_reasons)}"


CANCELLATION: Procedure[CancellationRequest] = Procedure(
    case_type=CaseType.CANCELLATION,
    workflow=CancellationWorkflow,
    request=CancellationRequest,
    state=CancellationState,
    path="cancellations",
    event_type="order.cancel_requested",
    title="cancel an order (refunded if not shipped, else a return is offered)",
    summary=lambda r: f"Cancel order {r.order_id} ({r.reason})",
    events=(STORE_CREDIT_CHOSEN, RETURN_REQUESTED, RETURN_DECLINED),
    cli={"reason": CliField(str, "REASON", "one of CANCEL_REASONS (e.g. ordered_by_mistake)")},
    check=_unknown_cancel_reason,
    check_field="reason",
)

FREIGHT_CLAIM: Procedure[FreightClaimRequest] = Procedure(
    case_type=CaseType.FREIGHT_CLAIM,
    workflow=FreightClaimWorkflow,
    request=FreightClaimRequest,
    state=FreightClaimState,
    path="freight-claims",
    event_type="freight.claim_filed",
    title="file a freight claim for a damaged or lost shipment",
    summary=lambda r: f"Freight claim ({r.kind.value}) ${r.amount:,.2f} for order {r.order_id}",
    events=(STORE_CREDIT_CHOSEN, CARRIER_SETTLED, ACCOUNTING_CLOSED),
    cli={
        "photos": CliField(str, "URL", "a photo's http(s) URL (repeat for each, at most 10)"),
        "skus": CliField(str, "SKU", "a sku to ship again, for a replacement (repeat for each)"),
    },
    handed_over=("linked_case_id",),  # the rush order that handed a lost parcel over
)

# One entry per procedure: everything else derives from this tuple.
PROCEDURES: tuple[Procedure[Any], ...] = (
    REFUND,
    RETURN,
    COMPLAINT,
    RUSH,
    CANCELLATION,
    ORDER_CHANGE,
    FREIGHT_CLAIM,
    BILLING_DISPUTE,
)


# ---- lookups ------------------------------------------------------------------------------


def _events() -> dict[str, Event]:
    events: dict[str, Event] = {}
    for procedure in PROCEDURES:
        for event in procedure.events:
            if events.setdefault(event.name, event) is not event:
                # One name, one meaning: callers send events by name, whatever the case.
                raise TypeError(f"two different events are called {event.name!r}")
    return events


# Every event any case accepts, by the name callers use.
EVENTS: dict[str, Event] = _events()
WORKFLOWS: tuple[type, ...] = tuple(p.workflow for p in PROCEDURES)
# Workflows that serve procedures without being cases (the per-lot watch of complaints).
SUPPORTING_WORKFLOWS: tuple[type, ...] = (LotWatchWorkflow,)
BY_CASE_TYPE: dict[CaseType, Procedure[Any]] = {p.case_type: p for p in PROCEDURES}
BY_EVENT_TYPE: dict[str, Procedure[Any]] = {p.event_type: p for p in PROCEDURES}
_BY_REQUEST: dict[type[BaseModel], Procedure[Any]] = {p.request: p for p in PROCEDURES}


def for_request(request: R) -> Procedure[R]:
    """The procedure ``request`` opens."""
    try:
        return _BY_REQUEST[type(request)]
    except KeyError:
        raise TypeError(f"no procedure takes a {type(request).__name__}") from None


def state_model(case_type: str) -> type[CaseState]:
    """The state model of a case of ``case_type`` (the base for a type no longer known)."""
    procedure = BY_CASE_TYPE.get(CaseType(case_type)) if case_type in set(CaseType) else None
    return CaseState if procedure is None else procedure.state
