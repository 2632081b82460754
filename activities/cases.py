"""Activities: every side effect a case has, as methods of one class.

The class receives its database and gateways, so the worker wires the real ones and tests
wire real local ones. Each method is idempotent: a retry after a crash finds its own earlier
write (audit seq, ledger key) and does nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import audit
from activities.billing_dispute import BillingDisputeActivities
from activities.cancellation import CancellationActivities
from activities.carrier import Carrier
from activities.complaints import ComplaintActivities
from activities.decision_codes import DecisionCodes
from activities.freight_claim import FreightClaimActivities
from activities.notices import NoticeActivities
from activities.order_change import OrderChangeActivities
from activities.orders import OrderInfo, OrderSystem
from activities.payments import (
    ChargeLedger,
    Held,
    PaymentDeclined,
    PaymentGateway,
    PaymentUnavailable,
    RefundLedger,
)
from activities.returns import ReturnAuthorizations
from activities.rush import RushActivities
from activities.staff import StaffDirectory
from infra.db import Case, Database
from settings import Settings
from workflows import policy
from workflows.models import (
    ApproverDirectory,
    ApproverLookup,
    AuditEntry,
    AuditLines,
    CaseOpening,
    CaseRules,
    DecisionCheck,
    DecisionVerdict,
    OrderVerdict,
    RefundCheck,
    RefundHold,
    RefundInstruction,
    RefundReceipt,
    RefundRelease,
)
from workflows.return_models import (
    OrderedLine,
    RaChange,
    RaIssue,
    RaIssued,
    RaStatus,
    ReturnableOrder,
    ReturnCheck,
    ReturnEligibility,
)

log = structlog.get_logger(__name__)


class CaseActivities(
    NoticeActivities,
    ComplaintActivities,
    RushActivities,
    OrderChangeActivities,
    BillingDisputeActivities,
    CancellationActivities,
    FreightClaimActivities,
):
    """Every activity of every procedure; the emails' are inherited from NoticeActivities."""

    def __init__(
        self,
        db: Database,
        *,
        orders: OrderSystem,
        payments: PaymentGateway,
        carrier: Carrier,
        settings: Settings,
    ) -> None:
        self.db = db
        self.orders = orders
        self.payments = payments
        self.carrier = carrier
        self.settings = settings
        self.staff = StaffDirectory(db)
        self.ledger = RefundLedger(db)
        self.charges = ChargeLedger(db)
        self.returns = ReturnAuthorizations(db)
        self.codes = DecisionCodes(db)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for the worker's registration."""
        return [
            self.open_case,
            self.record_event,
            self.record_lines,
            self.send_notice,
            self.record_needs_attention,
            self.verify_refund,
            self.find_approvers,
            self.reserve_refund,
            self.release_refund,
            self.verify_decision,
            self.issue_refund,
            self.check_return_eligibility,
            self.issue_ra_number,
            self.mark_ra_received,
            self.expire_ra,
            self.place_replacement,
            self.open_recall_review,
            self.check_rush_availability,
            self.charge_rush_fee,
            self.flag_priority,
            self.track_delivery,
            self.ask_carrier,
            self.check_order_change,
            self.quote_order_change,
            self.charge_order_change,
            self.apply_order_change,
            self.review_billing,
            self.document_dispute_resolution,
            self.assess_cancellation,
            self.cancel_order,
            self.verify_claim,
            self.place_claim_replacements,
            self.file_claim,
            self.claim_status,
            self.open_freight_claim,
        ]

    # ---- the case record -----------------------------------------------------------------

    @activity.defn(name="open_case")
    def open_case(self, opening: CaseOpening) -> CaseRules:
        """Create the case row with today's rules, or return the rules it opened with."""
        rules = self.settings.case_rules(opened_at=opening.opened_at)
        try:
            # One transaction on the common path; a retry (or a concurrent attempt) meets the
            # row it wrote on the primary key, rolls back, and reads the rules stored there.
            with self.db.transaction() as session:
                audit.open_case_row(session, opening, rules)
                audit.write(session, opening.audit)
        except IntegrityError:
            existing = self._stored_rules(opening.case_id)
            if existing is None:
                raise
            return existing
        log.info("case_opened", case_type=opening.case_type.value)
        return rules

    def _stored_rules(self, case_id: str) -> CaseRules | None:
        with self.db.read() as session:
            case = session.get(Case, case_id)
            return None if case is None else CaseRules.model_validate(case.rules)

    @activity.defn(name="record_event")
    def record_event(self, entry: AuditEntry) -> None:
        """Append to the audit trail and move the case's status and step."""
        with self.db.transaction() as session:
            audit.write_one(session, entry)

    @activity.defn(name="record_lines")
    def record_lines(self, lines: AuditLines) -> None:
        """Lines that found no effect to ride with: written before the case waits or ends."""
        with self.db.transaction() as session:
            audit.write(session, lines.lines)
            audit.write_clocks(session, lines.clocks)

    # ---- the order system ----------------------------------------------------------------

    @activity.defn(name="verify_refund")
    def verify_refund(self, check: RefundCheck) -> OrderVerdict:
        """The order exists, is the customer's, and still has this much refundable."""
        order = self.orders.get_order(check.order_id)
        refusal = _not_theirs(check.order_id, check.customer_id, order)
        if refusal is not None or order is None:
            return refusal or OrderVerdict(ok=False)
        if check.amount > order.refundable:
            return _not_enough(order)
        return OrderVerdict(ok=True, refundable=order.refundable)

    # ---- staff ---------------------------------------------------------------------------

    @activity.defn(name="find_approvers")
    def find_approvers(self, lookup: ApproverLookup) -> ApproverDirectory:
        """The staff directory as of ``lookup.at``, delegations included."""
        return self.staff.approver_directory(lookup.at)

    @activity.defn(name="verify_decision")
    def verify_decision(self, check: DecisionCheck) -> DecisionVerdict:
        """May this decision apply now? The directory as of ``check.at`` (staff deactivated
        or delegations ended since the approver list was taken), and for a signal its code."""
        approver = check.approver_id
        if check.by_signal and not self.settings.decision_signals:
            return DecisionVerdict(refusal="decisions by signal are turned off")
        if self.staff.is_inactive(approver):
            return DecisionVerdict(refusal=f"{approver} is no longer active in the staff directory")
        reason = policy.approver_refusal(
            self.staff.approver_directory(check.at),
            approver,
            amount=check.approval.amount,
            requested_by=check.approval.requested_by,
            rules=check.rules,
        )
        if reason:
            return DecisionVerdict(refusal=reason)
        if not check.by_signal:
            return DecisionVerdict()
        if not check.code:
            return DecisionVerdict(
                refusal="a decision by signal needs the decision code from the approval email"
            )
        spent = self.codes.spend(
            case_id=check.case_id,
            staff_id=approver,
            requested_at=check.approval.requested_at,
            code=check.code,
            event_id=check.event_id,
            at=check.at,
        )
        if not spent:
            log.warning("decision_code_refused", approver=approver)
            return DecisionVerdict(
                refusal=f"the decision code is not valid for {approver} on this request"
            )
        return DecisionVerdict()

    # ---- money ---------------------------------------------------------------------------

    @activity.defn(name="reserve_refund")
    def reserve_refund(self, hold: RefundHold) -> OrderVerdict:
        """Hold ``hold.amount`` of the order for a payment to come (or set the hold to it).

        The same key as the payment's: ``issue_refund`` finds this hold and pays from it.
        """
        order = self.orders.get_order(hold.order_id)
        refusal = _not_theirs(hold.order_id, hold.customer_id, order)
        if refusal is not None:
            self._write(hold.audit)
            return refusal
        held = self.ledger.hold(
            hold.idempotency_key,
            case_id=hold.case_id,
            order_id=hold.order_id,
            amount=hold.amount,
            audit=hold.audit,
        )
        if held in (Held.HELD, Held.PAID):
            log.info("refund_reserved", amount=f"{hold.amount:.2f}", held=held.value)
            return OrderVerdict(ok=True, refundable=hold.amount)
        # Refused: the hold's transaction rolled back, but the lines recorded before it
        # happened all the same.
        self._write(hold.audit)
        return self._unheld(hold.order_id, held)

    @activity.defn(name="release_refund")
    def release_refund(self, release: RefundRelease) -> bool:
        """Give the case's held amount back to its order; False when nothing was held."""
        released = self.ledger.release(release.idempotency_key, audit=release.audit)
        if released:
            log.info("refund_released")
        return released

    @activity.defn(name="issue_refund")
    def issue_refund(self, instruction: RefundInstruction) -> RefundReceipt:
        """Pay once, and only from a reservation: hold, call the gateway, record.

        The ledger's unique key turns a retried call into a lookup; the reservation (same
        key) is taken before the gateway is called, so concurrent payments on one order can
        never together exceed it. A decline releases the hold; an outage keeps it for the
        retry.
        """
        key = instruction.idempotency_key
        # Checked again just before paying: an approval can take days, and another case
        # may have refunded part of the order meanwhile.
        refusal = _not_theirs(
            instruction.order_id,
            instruction.customer_id,
            self.orders.get_order(instruction.order_id),
        )
        if refusal is not None:
            raise ApplicationError(refusal.reason, type="NotRefundable", non_retryable=True)
        # The case's lines (the refund started) are written with the reservation that lets
        # the payment happen, before the gateway is called.
        held = self.ledger.hold(
            key,
            case_id=instruction.case_id,
            order_id=instruction.order_id,
            amount=instruction.amount,
            audit=instruction.audit,
        )
        if held is Held.PAID:  # an earlier attempt (a retry) or a concurrent one paid it
            receipt = self.ledger.find(key)
            assert receipt is not None, "a paid reservation has its ledger row"
            log.info("refund_already_issued", reference=receipt.reference)
            return receipt
        if held is not Held.HELD:
            verdict = self._unheld(instruction.order_id, held)
            raise ApplicationError(verdict.reason, type="NotRefundable", non_retryable=True)
        try:
            reference = self.payments.refund(instruction)
        except PaymentDeclined as err:
            self.ledger.release(key)
            raise ApplicationError(str(err), type="PaymentDeclined", non_retryable=True) from err
        except PaymentUnavailable as err:
            # The hold stays: the retry pays from it, or the case gives up and releases it.
            raise ApplicationError(str(err), type="PaymentUnavailable") from err
        receipt = self.ledger.record(instruction, reference)
        log.info("refund_issued", method=receipt.method.value, reference=receipt.reference)
        return receipt

    def _write(self, lines: tuple[AuditEntry, ...]) -> None:
        """Lines whose carrier's effect did not happen (or happened before): on their own."""
        if lines:
            with self.db.transaction() as session:
                audit.write(session, lines)

    def _unheld(self, order_id: str, held: Held) -> OrderVerdict:
        if held is Held.RELEASED:
            return OrderVerdict(ok=False, reason="this payment was given up and cannot be made")
        order = self.orders.get_order(order_id)
        return _not_enough(order) if order else OrderVerdict(ok=False)

    # ---- returns -------------------------------------------------------------------------

    @activity.defn(name="check_return_eligibility")
    def check_return_eligibility(self, check: ReturnCheck) -> ReturnEligibility:
        """The return policy applied to the order as it stands and the RAs already issued."""
        order = self._returnable(check.order_id, except_case=check.case_id)
        return policy.return_eligibility(
            check.items,
            order,
            order_id=check.order_id,
            customer_id=check.customer_id,
            at=check.at,
            window=check.window,
        )

    @activity.defn(name="issue_ra_number")
    def issue_ra_number(self, request: RaIssue) -> RaIssued:
        """Mint the case's RA number once; a retry gets the number minted before."""
        order = self.orders.get_order(request.order_id)
        ordered = {line.sku: line.quantity for line in order.lines} if order else {}
        issued = self.returns.issue(request, ordered, audit=request.audit)
        if issued.ra:
            log.info("ra_issued", ra_number=issued.ra.ra_number)
        return issued

    @activity.defn(name="mark_ra_received")
    def mark_ra_received(self, change: RaChange) -> None:
        self.returns.mark(change.case_id, RaStatus.RECEIVED, change.at, audit=change.audit)

    @activity.defn(name="expire_ra")
    def expire_ra(self, change: RaChange) -> None:
        """The RA can no longer be received, and its items may be returned on a new one."""
        self.returns.mark(change.case_id, RaStatus.EXPIRED, change.at, audit=change.audit)

    def _returnable(self, order_id: str, *, except_case: str) -> ReturnableOrder | None:
        order = self.orders.get_order(order_id)
        if order is None:
            return None
        return ReturnableOrder(
            order_id=order.id,
            customer_id=order.customer_id,
            status=order.status,
            delivered_at=order.delivered_at,
            lines=tuple(
                OrderedLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for line in order.lines
            ),
            returned=self.returns.returned(order_id, except_case=except_case),
        )


def _not_theirs(order_id: str, customer_id: str, order: OrderInfo | None) -> OrderVerdict | None:
    """Why ``customer_id`` may not be refunded on this order, or None when they may."""
    if order is None:
        return OrderVerdict(ok=False, reason=f"order {order_id} does not exist")
    if order.customer_id != customer_id:
        return OrderVerdict(ok=False, reason=f"order {order_id} is not this customer's")
    return None


def _not_enough(order: OrderInfo) -> OrderVerdict:
    return OrderVerdict(
        ok=False,
        reason=f"only {order.refundable:.2f} of order {order.id} is still refundable",
        refundable=order.refundable,
    )
