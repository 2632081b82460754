"""RushOrderWorkflow: the SOP 'Rush Orders' (docs/rush-orders.md).

Verify availability, quote the fee and the promise, wait for the customer's acceptance,
charge once and flag the order, then follow up on delivery (the delivery and a late or
missed one, the Shipping Issues SOP, are workflows/rush_delivery.py).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.answers import Reply
from workflows.refunding import PAYMENT_RETRY, relayed
from workflows.rush_delivery import RushDelivery

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy
    from workflows.models import CaseStatus, CaseType, Outcome, Recipient
    from workflows.rush_models import (
        Availability,
        AvailabilityCheck,
        DeliveryState,
        FeeAnswer,
        FeeCharge,
        PriorityFlag,
        RushOrderRequest,
        RushQuote,
        RushState,
    )
    from workflows.sla_models import Clock

# VIP Customer Handling: 'priority service and expedited processing' - a VIP's rush order
# is served before every other backlogged task (rush orders start at 2, everything else 3).
VIP_PRIORITY = Priority(priority_key=1)


@workflow.defn
class RushOrderWorkflow(RushDelivery):
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
        self.reply: Reply[FeeAnswer] = Reply(
            offer="quote",
            expired="QuoteExpired",
            pending="NoQuotePending",
            show=self._instant,
            consequence="the order ships as standard",
            clock=Clock.RUSH_FEE_ACCEPTANCE,
        )
        self._promise_moved = False

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
        self.reply.open(quote.accept_by, self.sla)
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
            quote.accept_by,
            "The customer's answer to the quote",
            lambda: self.reply.answer is not None,
            clock=self.reply.clock,
        )
        if not answered or not self.reply.yes:
            return False
        answer, at = self.reply.answer, self.reply.at
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
        if self.reply.answer is not None:
            answer = self.reply.answer
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

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.update(name="accept_fee")
    async def accept_fee(self, answer: FeeAnswer) -> RushState:
        """The customer accepts the fee; refused once the quote expired."""
        self.reply.take(answer, True)
        return self.state_as(RushState)

    @accept_fee.validator
    def _validate_accept(self, answer: FeeAnswer) -> None:
        self.reply.refuse(answer, True, waiting=self._quoted())

    @workflow.update(name="decline_fee")
    async def decline_fee(self, answer: FeeAnswer) -> RushState:
        """The customer declines the fee; the order ships as standard."""
        self.reply.take(answer, False)
        return self.state_as(RushState)

    @decline_fee.validator
    def _validate_decline(self, answer: FeeAnswer) -> None:
        self.reply.refuse(answer, False, waiting=self._quoted())

    @workflow.signal(name="fee_accepted")
    async def fee_accepted(self, payload: dict[str, Any]) -> None:
        """The same acceptance, fire-and-forget (Temporal UI); a late one is recorded, ignored."""
        await self.reply.by_signal(
            self, "fee_accepted", FeeAnswer, payload, True, waiting=self._quoted
        )

    @workflow.signal(name="fee_declined")
    async def fee_declined(self, payload: dict[str, Any]) -> None:
        await self.reply.by_signal(
            self, "fee_declined", FeeAnswer, payload, False, waiting=self._quoted
        )

    def _quoted(self) -> bool:
        """The case waits for the customer's answer to its quote."""
        return self._status is CaseStatus.AWAITING_CUSTOMER

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
            "fee_answer": self.reply.said("accepted", "declined"),
            "charge_reference": self._charge,
            "delivery": DeliveryState.DELIVERED if self.delivered else self._tracking.state,
            "tracking_number": self._tracking.tracking_number,
            "fee_refunded": self._fee_refunded,
            "redeliveries": self._redeliveries,
            "escalated": self._escalated,
            "freight_claim_id": self._freight_claim,
        }
