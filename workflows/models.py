"""Typed messages shared by workflows, activities and callers.

Pure pydantic: no I/O, safe inside the workflow sandbox. Customer contact details never
appear here: workflows carry customer ids and activities look the details up, so Temporal
histories hold no emails, phones or addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workflows.calendar import BusinessCalendar
from workflows.sla_models import ClockMark, SlaRules

Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2, ge=0)]
PositiveMoney = Annotated[Decimal, Field(max_digits=12, decimal_places=2, gt=0)]
# Ids end up in workflow ids and search attributes: keep them to a safe, readable alphabet.
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Model(BaseModel):
    """Every model that travels through Temporal history.

    Unknown fields are ignored, not refused: an open case replays its history under the code
    of the day, so a field added by a newer worker or dropped since must not stop it. The
    HTTP API and the CLI validate strictly (``model_validate(..., extra="forbid")``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)


class CaseType(StrEnum):
    """One member per procedure that exists; a procedure adds its own when it lands."""

    REFUND = "refund"
    RETURN = "return"
    COMPLAINT = "complaint"
    RUSH = "rush"
    CANCELLATION = "cancellation"
    ORDER_CHANGE = "order_change"
    FREIGHT_CLAIM = "freight_claim"
    BILLING_DISPUTE = "billing_dispute"


class CaseStatus(StrEnum):
    RECEIVED = "received"
    VERIFYING = "verifying"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_RETURN = "awaiting_return"
    INSPECTING = "inspecting"
    REFUNDING = "refunding"
    # Quality complaints (workflows/complaints.py).
    ESCALATED = "escalated"
    RESOLVING = "resolving"
    FOLLOW_UP = "follow_up"
    AWAITING_CUSTOMER = "awaiting_customer"
    # Rush orders (workflows/rush_orders.py).
    CHECKING = "checking"
    PRIORITY = "priority"
    IN_TRANSIT = "in_transit"
    LATE = "late"
    # Cancellations, order changes, freight claims, billing disputes.
    REVIEWING = "reviewing"
    APPLYING = "applying"
    AWAITING_CARRIER = "awaiting_carrier"
    WITH_ACCOUNTING = "with_accounting"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    NEEDS_ATTENTION = "needs_attention"
    CLOSED = "closed"
    CLOSED_NO_RESPONSE = "closed_no_response"
    DECLINED = "declined"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"
    CONVERTED_TO_RETURN = "converted_to_return"
    RESOLVED = "resolved"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {
    CaseStatus.COMPLETED,
    CaseStatus.REJECTED,
    CaseStatus.EXPIRED,
    CaseStatus.NEEDS_ATTENTION,
    CaseStatus.CLOSED,
    CaseStatus.CLOSED_NO_RESPONSE,
    CaseStatus.DECLINED,
    CaseStatus.UNAVAILABLE,
    CaseStatus.CANCELLED,
    CaseStatus.CONVERTED_TO_RETURN,
    CaseStatus.RESOLVED,
}


class RefundMethod(StrEnum):
    ORIGINAL_PAYMENT = "original_payment"
    STORE_CREDIT = "store_credit"


class Department(Model):
    name: str
    extension: str
    email: str


class ApprovalRules(Model):
    remind_after: timedelta
    escalate_after: timedelta
    expire_after_days: int = Field(ge=1)
    approver_roles: tuple[str, ...]


class ComplaintRules(Model):
    """Quality Complaints: the settlement a manager must authorize (strictly over it), the
    follow-up promise, how long the customer has to answer, and the lot watch's trigger."""

    settlement_above: Decimal = Decimal("1000.00")
    follow_up_within: timedelta = timedelta(hours=24)
    satisfaction_wait_days: int = Field(default=3, ge=1)
    lot_alert_complaints: int = Field(default=3, ge=1)
    lot_alert_window: timedelta = timedelta(days=7)


class RushRules(Model):
    """Rush Orders: the fee (per order plus per item; waived for VIPs when set), the same-day
    cut-off on the business clock, the carrier's expedited transit in delivery days, how
    long a quote stands in business time, and how many business days after a missed promise
    a supervisor is told and the case handed to a person."""

    fee_per_order: Decimal = Decimal("25.00")
    fee_per_item: Decimal = Decimal("5.00")
    vip_fee_waived: bool = True
    same_day_cutoff: time = time(14, 0)
    transit_days: int = Field(default=1, ge=0)
    delivery_days: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # the carrier delivers Mon-Sat
    accept_within: timedelta = timedelta(hours=2)
    late_escalate_after_days: int = Field(default=2, ge=1)
    late_give_up_after_days: int = Field(default=10, ge=1)


class CancellationRules(Model):
    """Order Cancellations: the reasons a customer may give (plus free text), and how long a
    customer has to take the return offered for an order that already shipped."""

    reasons: tuple[str, ...] = (
        "ordered_by_mistake",
        "found_cheaper",
        "delivery_too_slow",
        "changed_mind",
        "duplicate_order",
        "other",
    )
    offer_wait: timedelta = timedelta(days=3)


class OrderChangeRules(Model):
    """Order Modifications: how long (business time) the customer has to accept a quote."""

    accept_within: timedelta = timedelta(hours=8)


class FreightClaimRules(Model):
    """Freight claims: a manager over ``approval_above`` (strictly), the carrier followed up
    every ``follow_up_every`` until it settles or ``carrier_wait`` passes (then Accounting)."""

    approval_above: Decimal = Decimal("200.00")
    follow_up_every: timedelta = timedelta(days=7)
    carrier_wait: timedelta = timedelta(days=30)


class CaseRules(Model):
    """Thresholds and timings in force when a case opened; recorded with the case.

    Only rules some procedure reads. Cases opened earlier carry rules since removed
    (complaint_settlement_above, freight_claim_above, follow_up_within) in their history;
    they are ignored on replay (``Model``). A field added later needs a default.
    """

    currency: str
    refund_approval_above: Decimal
    calendar: BusinessCalendar
    approval: ApprovalRules
    return_window: timedelta
    return_reminder_after: timedelta
    ra_expires_after: timedelta
    # Added after cases were recorded: rules stored without it load with this default.
    payment_retry_for: timedelta = timedelta(hours=1)
    # Nested, not the flat complaint_settlement_above / follow_up_within that older histories
    # carry (and that must keep being ignored): their values were never this procedure's.
    complaint: ComplaintRules = ComplaintRules()
    rush: RushRules = RushRules()
    cancellation: CancellationRules = CancellationRules()
    order_change: OrderChangeRules = OrderChangeRules()
    freight_claim: FreightClaimRules = FreightClaimRules()
    # Response standards of the SLA clocks (workflows/sla.py).
    sla: SlaRules = SlaRules()


# ---- Requests (one typed input per procedure) --------------------------------------------


class RefundRequest(Model):
    """A request to refund part or all of an order."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    amount: PositiveMoney
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    requested_by: Identifier


# ---- Messages a running case accepts -------------------------------------------------------


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


# What an approver types from the approval email; compared (normalized) with a stored hash.
DecisionCodeText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class Decision(Model):
    """A manager's answer to an approval request.

    ``code`` is the approver's single-use decision code from the approval email: a decision
    sent as a signal carries no trustworthy sender, so the code is its proof (updates come
    through the API or CLI, which authenticate the approver themselves).
    """

    approver_id: Identifier
    decision: DecisionKind
    note: Note = ""
    event_id: Identifier | None = None
    code: DecisionCodeText | None = None


class StoreCreditChoice(Model):
    """The customer prefers immediate store credit to a refund on the original payment."""

    event_id: Identifier
    # Set by the entry point from the authenticated caller, never from a request body.
    chosen_by: Identifier = "customer"
    # A relaying service (the shop backend) names the person it relays for; recorded as such.
    on_behalf_of: Identifier | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a message cannot apply now; ``kind`` lets callers map it (403 or 409)."""

    kind: str  # "NotAuthorized" | "NoDecisionPending" | a procedure's own, e.g. "UnknownRA"
    message: str


# ---- Activity inputs and results -----------------------------------------------------------


class Audited(Model):
    """An activity input that carries audit lines, written in the transaction of its effect.

    ``audit`` holds the case's lines recorded since the last write (each once, by its seq),
    so bookkeeping rides with the work instead of costing an activity per line.
    """

    audit: tuple[AuditEntry, ...] = ()


class CaseOpening(Audited):
    case_id: str
    case_type: CaseType
    order_id: str
    customer_id: str
    amount: Money | None
    requested_by: str
    request: dict[str, Any]
    opened_at: datetime


class AuditEntry(Model):
    """One line of the audit trail; ``seq`` makes a retried write a no-op."""

    case_id: str
    seq: int
    at: datetime
    event: str
    actor: str
    detail: dict[str, str] = {}
    status: CaseStatus | None = None
    step: str | None = None
    approval: ApprovalState | None = None
    # SLA clocks started, warned, breached or stopped since the case's previous line: their
    # rows ride with this line, in its transaction (workflows/sla.py).
    clocks: tuple[ClockMark, ...] = ()


class AuditLines(Model):
    """Lines with no effect of their own, written together (before the case waits), and
    clock marks that found no line to ride with."""

    lines: tuple[AuditEntry, ...]
    clocks: tuple[ClockMark, ...] = ()


class Recipient(StrEnum):
    CUSTOMER = "customer"
    APPROVERS = "approvers"
    CS_MANAGER = "cs_manager"
    DEPARTMENT = "department"
    STAFF = "staff"  # the people named in ``staff_ids`` (the CS manager when none is found)


class Notice(Audited):
    """An email from a template, queued with its audit line in one transaction (after the
    earlier lines in ``audit``). ``copy_cs_manager`` sends it to the CS manager too."""

    entry: AuditEntry
    template: str
    recipient: Recipient
    staff_ids: tuple[str, ...] = ()
    department: str | None = None
    context: dict[str, str] = {}
    copy_cs_manager: bool = False


class Escalation(Audited):
    """A case stopped by a fault: its ``needs_attention`` audit line and who must be told.

    The CS manager always is; ``department`` (the owner of the failing step) too, when set.
    ``opening`` lets the record be written even when the case row itself never was.
    """

    entry: AuditEntry
    department: str | None = None
    context: dict[str, str] = {}
    opening: CaseOpening | None = None


class RefundCheck(Model):
    order_id: str
    customer_id: str
    amount: PositiveMoney


class OrderVerdict(Model):
    ok: bool
    reason: str = ""
    refundable: Money = Decimal("0")


class StaffMember(Model):
    id: str
    name: str
    role: str
    approval_limit: Money
    acting_for: str | None = None


class ApproverLookup(Model):
    case_id: str
    at: datetime


class ApproverDirectory(Model):
    """Everyone who could be asked, as of one instant, with their limits."""

    staff: tuple[StaffMember, ...]


class DecisionCheck(Model):
    """A decision to confirm against the directory as of ``at`` (and, by signal, its code)."""

    case_id: str
    approver_id: str
    event_id: str | None
    code: str | None
    by_signal: bool
    at: datetime
    approval: ApprovalState
    rules: CaseRules


class DecisionVerdict(Model):
    """Empty ``refusal`` when the decision may apply; else why not (``kind`` as for updates)."""

    refusal: str = ""
    kind: str = "NotAuthorized"


class RefundInstruction(Audited):
    case_id: str
    idempotency_key: str
    order_id: str
    customer_id: str
    amount: PositiveMoney
    method: RefundMethod
    issued_at: datetime


class RefundHold(Audited):
    """Hold ``amount`` of an order for the payment keyed ``idempotency_key`` (its own key)."""

    case_id: str
    idempotency_key: str
    order_id: str
    customer_id: str
    amount: PositiveMoney


class RefundRelease(Audited):
    """Give back what the payment keyed ``idempotency_key`` held: it will not be made."""

    case_id: str
    idempotency_key: str


class RefundReceipt(Model):
    reference: str
    method: RefundMethod
    amount: Money
    issued_at: datetime


# ---- What a caller sees --------------------------------------------------------------------


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalKind(StrEnum):
    """What a case asks the gate: an authorization over a threshold, an exception to a
    written rule, or a commercial pricing adjustment (Manager Authorization Required)."""

    AUTHORIZATION = "authorization"
    POLICY_EXCEPTION = "policy_exception"
    PRICING_ADJUSTMENT = "pricing_adjustment"


class ApprovalState(Model):
    status: ApprovalStatus
    amount: Money
    reason: str
    requested_by: str
    requested_at: datetime
    remind_at: datetime
    escalate_at: datetime
    due_at: datetime
    eligible_approvers: tuple[str, ...]
    reminded: bool = False
    escalated: bool = False
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str = ""
    kind: ApprovalKind = ApprovalKind.AUTHORIZATION
    rule: str | None = None  # the written rule an exception is asked for (POLICY_EXCEPTION)


class TimelineEntry(Model):
    at: datetime
    event: str
    actor: str
    detail: dict[str, str] = {}


class Outcome(Model):
    status: CaseStatus
    reason: str = ""
    amount: Money | None = None
    method: RefundMethod | None = None
    reference: str | None = None
    timeline: str | None = None


class CaseState(Model):
    case_id: str
    type: CaseType
    status: CaseStatus
    step: str
    order_id: str
    customer_id: str
    amount: Money | None
    requested_by: str
    refund_method: RefundMethod | None = None
    approval: ApprovalState | None = None
    outcome: Outcome | None = None
    timeline: tuple[TimelineEntry, ...] = ()

    def refusal_once_closed(self, message: BaseModel) -> tuple[str, str] | None:
        """Why this closed case refuses ``message``, in its own words (kind, sentence), where
        a procedure has more to say than that the case is closed."""
        return None


AuditEntry.model_rebuild()
Audited.model_rebuild()
DecisionCheck.model_rebuild()
