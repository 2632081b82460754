"""RushOrderWorkflow: the SOP 'Rush Orders' (docs/rush-orders.md).

Verify availability, quote the fee and the promise, wait for the customer's acceptance,
charge once and flag the order, then follow up on delivery; a late or missed delivery is a
shipping issue (Shipping Issues SOP): investigate, refund the fee, redeliver, escalate.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.journal import ACTIVITY_TIMEOUT, DEFAULT_RETRY
from workflows.refunding import PAYMENT_RETRY, RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy, visibility
    from workflows.freight_claim_models import ClaimHandOff
    from workflows.models import ApproverLookup, CaseStatus, CaseType, Outcome, Recipient
    from workflows.rush_models import (
        Availability,
        AvailabilityCheck,
        CarrierReport,
        CarrierRequest,
        CarrierRequestKind,
        DeliveryQuery,
        DeliveryState,
        FeeAnswer,
        FeeCharge,
        PriorityFlag,
        RushOrderRequest,
        RushQuote,
        RushState,
        Tracking,
    )

# VIP Customer Handling: 'priority service and expedited processing' - a VIP's rush order
# is served before every other backlogged task (rush orders start at 2, everything else 3).
VIP_PRIORITY = Priority(priority_key=1)


@workflow.defn
class RushOrderWorkflow(RefundingCase):
    """Check, quote, wait for acceptance, expedite, follow the delivery."""

    case_type = CaseType.RUSH
    state_model = RushState

    @workflow.init
    def __init__(self, request: RushOrderRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=None,
            requested_by=request.requested_by,
        )
        self._request = request
        self._vip = False
        self._quote: RushQuote | None = None
        self._answer: FeeAnswer | None = None
        self._accepted: bool | None = None
        self._answered_at: datetime | None = None
        self._charge: str | None = None
        self._tracking = Tracking()
        self._delivered: CarrierReport | None = None
        self._attempts_reported = 0  # delivery attempts the carrier told us of by event
        self._redeliveries = 0  # attempts a redelivery was arranged for
        self._fee_refunded = False
        self._escalated = False
        self._promise_moved = False
        self._freight_claim: str | None = None  # the claim case a lost parcel handed off to

    @workflow.run
    async def run(self, request: RushOrderRequest) -> Outcome:
        await self.open_case(request)
        availability = await self.check_availability()
        if availability.refusal:
            return await self.finish(
                CaseStatus.UNAVAILABLE, reason=availability.refusal, template="rush_refused"
            )
        if availability.unavailable:
            return await self.report_unavailable(availability)
        quote = await self.send_quote(availability)
        if not await self.await_acceptance(quote):
            return await self.not_accepted()
        declined = await self.expedite()
        if declined is not None:
            return declined
        return await self.follow_delivery()

    # ---- the steps -----------------------------------------------------------------------

    async def check_availability(self) -> Availability:
        """Step 1: 'Verify product availability for expedited processing', every line."""
        await self.record("checking", status=CaseStatus.CHECKING, step="Checking availability")
        availability = await self.call(
            CaseActivities.check_rush_availability,
            AvailabilityCheck(
                case_id=self.case_id, order_id=self._order_id, customer_id=self._customer_id
            ),
            summary="Check availability for expedited processing",
        )
        if availability.vip:
            self._vip = True
            self.activity_priority = VIP_PRIORITY
        return availability

    async def report_unavailable(self, availability: Availability) -> Outcome:
        """Step 1 (cont.): tell the customer which items cannot go out, and when they can."""
        lines = [
            f"- {item.sku}: {item.in_stock} of {item.wanted} in stock"
            + (
                f", more expected {item.available_on:%A %B} {item.available_on.day}"
                if item.available_on
                else ", no restock date yet"
            )
            for item in availability.unavailable
        ]
        dates = [item.available_on for item in availability.unavailable]
        # Every item back in stock: known only when each has a restock date.
        earliest = max(d for d in dates if d) if all(dates) else None
        return await self.finish(
            CaseStatus.UNAVAILABLE,
            reason="not in stock for expedited processing: "
            + ", ".join(item.sku for item in availability.unavailable),
            template="rush_unavailable",
            context={
                "items": "\n".join(lines),
                "earliest": f"{earliest:%A %B} {earliest.day}" if earliest else "not known yet",
            },
        )

    async def send_quote(self, availability: Availability) -> RushQuote:
        """Step 2: 'Explain rush order fees and timeline' - the quote, with its deadline."""
        quote = policy.rush_quote(
            self.rules, at=workflow.now(), items=availability.items, vip=availability.vip
        )
        self._quote = quote
        self._show_promise(quote)
        requested = self._request.requested_delivery_date
        short = requested is not None and requested < quote.promised_on
        await self.notify(
            "rush_quote",
            Recipient.CUSTOMER,
            status=CaseStatus.AWAITING_CUSTOMER,
            step=f"Waiting for the customer to accept the {quote.fee:.2f} rush fee",
            event="rush_quoted",
            detail={
                "fee": f"{quote.fee:.2f}",
                "waived": str(quote.waived).lower(),
                "promised_on": quote.promised_on.isoformat(),
                "accept_by": quote.accept_by.isoformat(),
            },
            context={
                "fee": "waived for you as a VIP customer" if quote.waived else f"{quote.fee:.2f}",
                "promised": self._day(quote),
                "accept_by": self._instant(quote.accept_by),
                "requested": (
                    f"We cannot make your requested date, {requested:%A %B} {requested.day}; "
                    "this is the earliest we can deliver.\n"
                    if short and requested
                    else ""
                ),
            },
        )
        return quote

    async def await_acceptance(self, quote: RushQuote) -> bool:
        """Step 3: 'Confirm customer acceptance of additional costs', within RUSH_ACCEPT_WITHIN."""
        answered = await self.wait_until(
            quote.accept_by, "The customer's answer to the quote", lambda: self._answer is not None
        )
        if not answered or not self._accepted:
            return False
        answer, at = self._answer, self._answered_at
        assert answer is not None and at is not None
        await self.record(
            "fee_accepted",
            actor=answer.answered_by,
            detail={"note": answer.note, **relayed(answer.on_behalf_of)},
        )
        ships_on, promised_on = policy.rush_dates(self.rules, at)
        if promised_on != quote.promised_on:
            # Accepted in time for the quote, too late for that day's cut-off.
            self._quote = quote.model_copy(
                update={"ships_on": ships_on, "promised_on": promised_on}
            )
            self._promise_moved = True
            self._show_promise(self._quote)
            await self.record(
                "promise_moved",
                detail={"from": quote.promised_on.isoformat(), "to": promised_on.isoformat()},
            )
        return True

    async def not_accepted(self) -> Outcome:
        """Step 3 (cont.): no rush - the order ships as standard, and the customer knows."""
        if self._answer is not None:
            answer = self._answer
            await self.record(
                "fee_declined",
                actor=answer.answered_by,
                detail={"note": answer.note, **relayed(answer.on_behalf_of)},
            )
            return await self.finish(
                CaseStatus.DECLINED,
                reason="the customer declined the rush fee; the order ships as standard",
                template="rush_declined",
            )
        return await self.finish(
            CaseStatus.DECLINED,
            reason="the rush fee was not accepted in time; the order ships as standard",
            template="rush_quote_expired",
        )

    async def expedite(self) -> Outcome | None:
        """Step 4: charge the fee once, 'Flag order for priority processing', confirm."""
        quote = self._quote
        assert quote is not None
        if quote.fee > 0:
            ended = await self.charge_fee(quote)
            if ended is not None:
                return ended
        await self.effect(
            CaseActivities.flag_priority,
            PriorityFlag(
                case_id=self.case_id,
                order_id=self._order_id,
                promised_on=quote.promised_on,
                at=workflow.now(),
            ),
            summary="Flag the order for priority processing",
        )
        await self.notify(
            "rush_confirmed",
            Recipient.CUSTOMER,
            status=CaseStatus.PRIORITY,
            step=f"Priority processing, promised for {quote.promised_on.isoformat()}",
            event="rush_confirmed",
            detail={"promised_on": quote.promised_on.isoformat()},
            context={
                "promised": self._day(quote),
                "moved": (
                    "You accepted after today's cut-off, so the delivery date moved to "
                    f"{self._day(quote)}.\n"
                    if self._promise_moved
                    else ""
                ),
                "charged": (
                    f"A rush fee of {quote.fee:.2f} was charged (reference {self._charge}).\n"
                    if self._charge
                    else ""
                ),
            },
        )
        if self._vip:
            await self.notify("rush_vip_report", Recipient.CS_MANAGER, event="vip_reported")
        return None

    async def charge_fee(self, quote: RushQuote) -> Outcome | None:
        """Step 4 (cont.): the fee, charged once however often the attempt is retried."""
        await self.record("charging_fee", step=f"Charging the {quote.fee:.2f} rush fee")
        charge = FeeCharge(
            case_id=self.case_id,
            idempotency_key=f"{self.case_id}/rush-fee",
            order_id=self._order_id,
            customer_id=self._customer_id,
            amount=quote.fee,
            charged_at=workflow.now(),
        )
        try:
            receipt = await self.effect(
                CaseActivities.charge_rush_fee,
                charge,
                retry=PAYMENT_RETRY,
                schedule_to_close=self.rules.payment_retry_for,
                summary=f"Charge the {quote.fee:.2f} rush fee",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "PaymentDeclined":
                return await self.finish(
                    CaseStatus.DECLINED,
                    reason=f"the rush fee payment was declined ({cause.message}); "
                    "the order ships as standard",
                    template="rush_payment_declined",
                )
            # The gateway stayed down: the case stops needs_attention, Accounting told.
            raise
        self._charge = receipt.reference
        await self.record("fee_charged", detail={"reference": receipt.reference})
        return None

    async def follow_delivery(self) -> Outcome:
        """Step 5: 'Follow up to ensure on-time delivery' at the end of the promised day."""
        quote = self._quote
        assert quote is not None
        await self.wait_until(
            policy.ship_cutoff(self.rules, quote.ships_on),
            "Leaves with the expedited pickup",
            self._arrived,
        )
        if not self._arrived():
            await self.record(
                "in_transit",
                status=CaseStatus.IN_TRANSIT,
                step=f"In transit, promised for {quote.promised_on.isoformat()}",
            )
        due = policy.delivery_due(self.rules, quote.promised_on)
        if not await self.wait_until(due, "Promised delivery: check it arrived", self._arrived):
            await self.track()
        if self.delivered:
            return await self.finish(
                CaseStatus.COMPLETED, reason="delivered on time", template="rush_delivered"
            )
        return await self.handle_late(due)

    async def handle_late(self, due: datetime) -> Outcome:
        """Step 6 (Shipping Issues): investigate, refund the fee once, tell the customer, check
        every business day; redeliver a missed delivery; a supervisor after LATE_ESCALATE_AFTER."""
        quote = self._quote
        assert quote is not None
        calendar, rush = self.rules.calendar, self.rules.rush
        await self.record(
            "delivery_late",
            status=CaseStatus.LATE,
            step=f"Late: promised for {quote.promised_on.isoformat()}",
            detail={"carrier_state": self._tracking.state.value},
        )
        await self.ask_carrier(CarrierRequestKind.INVESTIGATION, "investigation")
        refunded = await self.refund_fee(quote)
        if isinstance(refunded, Outcome):
            return refunded
        await self.notify(
            "rush_late",
            Recipient.CUSTOMER,
            event="customer_told_late",
            context={
                "promised": self._day(quote),
                "refund": (
                    f"We have refunded your rush fee of {quote.fee:.2f}.\n" if refunded else ""
                ),
            },
        )
        escalate_at = calendar.add_business_days(due, rush.late_escalate_after_days)
        give_up_at = calendar.add_business_days(due, rush.late_give_up_after_days)
        while not self.delivered:
            if self._tracking.state is DeliveryState.LOST:
                return await self.lost()
            await self.redeliver_missed()
            now = workflow.now()
            if now >= escalate_at and not self._escalated:
                await self.escalate_late(quote)
            if now >= give_up_at:
                await self.notify(
                    "rush_not_delivered",
                    Recipient.CS_MANAGER,
                    event="late_delivery_handed_over",
                    context={
                        "promised": self._day(quote),
                        "days": str(rush.late_give_up_after_days),
                    },
                )
                return await self.finish(
                    CaseStatus.NEEDS_ATTENTION,
                    reason=f"still not delivered {rush.late_give_up_after_days} business days "
                    "after the promise; a person must take it over",
                )
            check_at = calendar.add_business_days(now, 1)
            if not self._escalated:
                check_at = min(check_at, escalate_at)
            if not await self.wait_until(
                check_at, "Check the delivery again", self._news_since(self._carrier_news())
            ):
                await self.track()
        return await self.finish(
            CaseStatus.COMPLETED,
            reason="delivered late; the rush fee was refunded" if refunded else "delivered late",
            template="rush_delivered_late",
        )

    # ---- pieces of the late path -------------------------------------------------------------

    async def track(self) -> Tracking:
        """Shipping Issues: 'Verify delivery status and tracking' with the carrier."""
        tracking = await self.call(
            CaseActivities.track_delivery,
            DeliveryQuery(case_id=self.case_id, order_id=self._order_id),
            summary="Ask the carrier where the parcel is",
        )
        self._tracking = tracking
        await self.record(
            "delivery_checked",
            detail={
                "carrier_state": tracking.state.value,
                "tracking_number": tracking.tracking_number or "",
            },
        )
        return tracking

    @property
    def delivered(self) -> bool:
        return self._delivered is not None or self._tracking.state is DeliveryState.DELIVERED

    def _carrier_news(self) -> tuple[bool, int]:
        return self._delivered is not None, self._attempts_reported

    def _news_since(self, news: tuple[bool, int]) -> Callable[[], bool]:
        """A condition: the carrier has told us something since ``news``."""
        return lambda: self._carrier_news() != news

    def _arrived(self) -> bool:
        return self._delivered is not None

    async def ask_carrier(self, kind: CarrierRequestKind, key: str) -> str:
        ack = await self.effect(
            CaseActivities.ask_carrier,
            CarrierRequest(
                case_id=self.case_id,
                key=f"{self.case_id}/{key}",
                order_id=self._order_id,
                kind=kind,
                at=workflow.now(),
            ),
            summary=f"Ask the carrier for a {kind.value}",
        )
        await self.record(f"carrier_{kind.value}", detail={"reference": ack.reference})
        return ack.reference

    async def refund_fee(self, quote: RushQuote) -> bool | Outcome:
        """Shipping Issues: 'Process shipping refunds for late deliveries' - the rush fee, once,
        by the shared refund mechanism; whether a fee was refunded (or the case's ending)."""
        if self._charge is None or self._fee_refunded:
            return self._fee_refunded
        receipt = await self.refund_money(quote.fee, status=CaseStatus.LATE)
        if isinstance(receipt, Outcome):
            return receipt
        self._fee_refunded = True
        await self.record(
            "rush_fee_refunded",
            detail={"reference": receipt.reference, "amount": f"{receipt.amount:.2f}"},
        )
        return True

    async def redeliver_missed(self) -> None:
        """Shipping Issues: 'Arrange redelivery for missed deliveries', once per attempt."""
        attempts = max(self._tracking.attempts, self._attempts_reported)
        while self._redeliveries < attempts:
            self._redeliveries += 1
            await self.ask_carrier(
                CarrierRequestKind.REDELIVERY, f"redelivery-{self._redeliveries}"
            )
            await self.notify(
                "rush_redelivery", Recipient.CUSTOMER, event="customer_told_redelivery"
            )

    async def escalate_late(self, quote: RushQuote) -> None:
        """Supervisor Escalation: still not delivered LATE_ESCALATE_AFTER past the promise."""
        directory = await self.call(
            CaseActivities.find_approvers,
            ApproverLookup(case_id=self.case_id, at=workflow.now()),
            summary="Find the supervisors",
        )
        self._escalated = True
        await self.notify(
            "rush_late_escalation",
            Recipient.STAFF,
            staff_ids=tuple(m.id for m in directory.staff if m.role == "supervisor"),
            step="Late: escalated to a supervisor",
            event="late_delivery_escalated",
            context={"promised": self._day(quote)},
        )

    async def lost(self) -> Outcome:
        """The carrier lost it: a freight claim case takes it over (refunding what the order
        can still refund, pursuing the carrier), linked to this case; the CS manager is told."""
        opened = await workflow.execute_activity_method(
            CaseActivities.open_freight_claim,
            ClaimHandOff(
                case_id=self.case_id,
                order_id=self._order_id,
                customer_id=self._customer_id,
                tracking_number=self._tracking.tracking_number,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DEFAULT_RETRY,
            summary="Open the freight claim",
            priority=self.activity_priority,
        )
        self._freight_claim = opened.case_id
        await self.notify(
            "rush_lost",
            Recipient.CS_MANAGER,
            event="freight_claim_opened" if opened.case_id else "freight_claim_needed",
            detail={"freight_claim": opened.case_id} if opened.case_id else None,
            context={
                "tracking_number": self._tracking.tracking_number or "(none)",
                "claim": (
                    f"Freight claim case {opened.case_id} was opened for {opened.amount:.2f}: it"
                    " refunds the customer and pursues the carrier."
                    if opened.case_id and opened.amount is not None
                    else "Nothing is left to refund on the order, so no freight claim case was"
                    " opened: please settle it with the customer and the carrier."
                ),
            },
        )
        if opened.case_id is None:
            return await self.finish(
                CaseStatus.NEEDS_ATTENTION,
                reason="the carrier reports the parcel lost; nothing is left to claim on the "
                "order, a person must settle it",
                template="rush_lost_customer",
            )
        return await self.finish(
            CaseStatus.CLOSED,
            reason=f"the carrier reports the parcel lost; freight claim {opened.case_id} "
            "took it over",
            template="rush_lost_customer",
        )

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.update(name="accept_fee")
    async def accept_fee(self, answer: FeeAnswer) -> RushState:
        """The customer accepts the fee; refused once the quote expired."""
        return self._answered(answer, accepted=True)

    @accept_fee.validator
    def _validate_accept(self, answer: FeeAnswer) -> None:
        self._refuse_answer(answer, accepted=True)

    @workflow.update(name="decline_fee")
    async def decline_fee(self, answer: FeeAnswer) -> RushState:
        """The customer declines the fee; the order ships as standard."""
        return self._answered(answer, accepted=False)

    @decline_fee.validator
    def _validate_decline(self, answer: FeeAnswer) -> None:
        self._refuse_answer(answer, accepted=False)

    @workflow.signal(name="fee_accepted")
    async def fee_accepted(self, payload: dict[str, Any]) -> None:
        """The same acceptance, fire-and-forget (Temporal UI); a late one is recorded, ignored."""
        await self._answer_signal("fee_accepted", payload, accepted=True)

    @workflow.signal(name="fee_declined")
    async def fee_declined(self, payload: dict[str, Any]) -> None:
        await self._answer_signal("fee_declined", payload, accepted=False)

    @workflow.signal(name="delivered")
    async def delivered_signal(self, payload: dict[str, Any]) -> None:
        """The carrier delivered: ends the wait for the promised day (or the late checks)."""
        report = await self.parse_signal("delivered", CarrierReport, payload)
        if report is None or self._delivered is not None:
            return
        self._delivered = report
        await self.record(
            "delivered",
            actor=report.reported_by,
            detail={
                "tracking_number": report.tracking_number or "",
                **relayed(report.on_behalf_of),
            },
        )

    @workflow.signal(name="delivery_attempted")
    async def delivery_attempted(self, payload: dict[str, Any]) -> None:
        """The carrier tried and could not deliver: a redelivery is arranged."""
        report = await self.parse_signal("delivery_attempted", CarrierReport, payload)
        if report is None:
            return
        self._attempts_reported = max(self._attempts_reported, self._tracking.attempts) + 1
        await self.record(
            "delivery_attempted",
            actor=report.reported_by,
            detail={"note": report.note, **relayed(report.on_behalf_of)},
        )

    def _refusal(self, answer: FeeAnswer, accepted: bool) -> tuple[str, str] | None:
        """Why this answer cannot apply now (kind, message), or None."""
        if self._answer is not None:
            if self._answer.event_id == answer.event_id and self._accepted is accepted:
                return None  # the same answer again: a retry
            return ("AlreadyAnswered", "the customer already answered this quote")
        quote = self._quote
        if quote is None or self._status is not CaseStatus.AWAITING_CUSTOMER:
            return ("NoQuotePending", f"no rush quote is waiting for an answer ({self._status})")
        if workflow.now() >= quote.accept_by:
            return (
                "QuoteExpired",
                f"the quote expired at {self._instant(quote.accept_by)}; the order ships as "
                "standard",
            )
        return None

    def _refuse_answer(self, answer: FeeAnswer, *, accepted: bool) -> None:
        refusal = self._refusal(answer, accepted)
        if refusal is not None:
            raise ApplicationError(refusal[1], type=refusal[0], non_retryable=True)

    def _answered(self, answer: FeeAnswer, *, accepted: bool) -> RushState:
        if self._answer is None:
            self._answer, self._accepted = answer, accepted
            self._answered_at = workflow.now()
        state = self.state()
        assert isinstance(state, RushState)
        return state

    async def _answer_signal(self, name: str, payload: dict[str, Any], *, accepted: bool) -> None:
        answer = await self.parse_signal(name, FeeAnswer, payload)
        if answer is None:
            return
        refusal = self._refusal(answer, accepted)
        if refusal is not None:
            await self.record(
                f"{name}_ignored", actor=answer.answered_by, detail={"reason": refusal[1]}
            )
            return
        self._answered(answer, accepted=accepted)

    # ---- what callers and emails see -------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        quote = self._quote
        return {
            **super().extra_state(),
            "requested_delivery_date": self._request.requested_delivery_date,
            "vip": self._vip,
            "fee": quote.fee if quote else None,
            "fee_waived": quote.waived if quote else False,
            "accept_by": quote.accept_by if quote else None,
            "ships_on": quote.ships_on if quote else None,
            "promised_on": quote.promised_on if quote else None,
            "fee_answer": None
            if self._accepted is None
            else ("accepted" if self._accepted else "declined"),
            "charge_reference": self._charge,
            "delivery": DeliveryState.DELIVERED if self.delivered else self._tracking.state,
            "tracking_number": self._tracking.tracking_number,
            "fee_refunded": self._fee_refunded,
            "redeliveries": self._redeliveries,
            "escalated": self._escalated,
            "freight_claim_id": self._freight_claim,
        }

    def _show_promise(self, quote: RushQuote) -> None:
        """The PromisedBy search attribute: ops list the deliveries due, or overdue."""
        due = policy.delivery_due(self.rules, quote.promised_on)
        workflow.upsert_search_attributes([visibility.PROMISED_BY.value_set(due)])

    def _day(self, quote: RushQuote) -> str:
        day = quote.promised_on
        return f"{day:%A %B} {day.day}"

    def _instant(self, instant: datetime) -> str:
        local = self.rules.calendar.local(instant)
        return f"{local:%A %B} {local.day}, {local:%H:%M %Z}"
