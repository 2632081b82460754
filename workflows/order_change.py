"""OrderChangeWorkflow: the SOP 'Order Modifications' (docs/order-changes.md).

Verify the order can still change, explain what it costs (a commercial price adjustment
authorized by a manager first), wait for the customer's acceptance, charge, apply the change
once with its reason in the order's notes, refund what it takes off, confirm by email.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.answers import Reply
from workflows.refunding import PAYMENT_RETRY, RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows.models import (
        ApprovalKind,
        ApprovalStatus,
        CaseStatus,
        CaseType,
        Outcome,
        Recipient,
    )
    from workflows.order_change_models import (
        ChangeAnswer,
        ChangeApplication,
        ChangeCheck,
        ChangeEligibility,
        ChangeQuote,
        OrderChange,
        OrderChangeRequest,
        OrderChangeState,
        QuoteAsk,
    )
    from workflows.rush_models import FeeCharge
    from workflows.sla_models import Clock

# The written rule a commercial price adjustment is asked under (Manager Authorization).
COMMERCIAL_PRICING = "COMMERCIAL_PRICING"


@workflow.defn
class OrderChangeWorkflow(RefundingCase):
    """Check, quote, authorize an adjustment, wait for acceptance, charge, apply, refund."""

    case_type = CaseType.ORDER_CHANGE
    state_model = OrderChangeState

    @workflow.init
    def __init__(self, request: OrderChangeRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=None,
            requested_by=request.requested_by,
        )
        self._request = request
        self._commercial = False
        self._change: OrderChange | None = None
        self.reply: Reply[ChangeAnswer] = Reply(
            offer="quote",
            expired="QuoteExpired",
            pending="NoQuotePending",
            show=self._instant,
            consequence="the order is unchanged",
            clock=Clock.ORDER_CHANGE_QUOTE,
        )
        self._applied = False
        self._charge: str | None = None
        self._refund: str | None = None

    @workflow.run
    async def run(self, request: OrderChangeRequest) -> Outcome:
        await self.open_case(request.withheld())  # the new address stays off the case row
        eligibility = await self.check_order()
        if eligibility.refusal:
            return await self.refuse(eligibility.refusal)
        if request.price_adjustment is not None and not eligibility.commercial:
            return await self.refuse("price adjustments are for commercial accounts only")
        quote = await self.price_change()
        if quote.refusal or quote.change is None:
            return await self.refuse(quote.refusal)
        if request.price_adjustment is not None:
            refused = await self.authorize_adjustment(request.price_adjustment)
            if refused is not None:
                return refused
        if quote.change.difference != 0:
            await self.send_quote(quote)
            if not await self.await_acceptance():
                return await self.not_accepted()
        return await self.make_change(quote.change)

    # ---- the steps -----------------------------------------------------------------------

    async def check_order(self) -> ChangeEligibility:
        """Step 1: 'Verify modification is possible based on order status' (processing)."""
        await self.record("reviewing", status=CaseStatus.REVIEWING, step="Checking the order")
        eligibility = await self.call(
            CaseActivities.check_order_change,
            ChangeCheck(
                case_id=self.case_id, order_id=self._order_id, customer_id=self._customer_id
            ),
            summary="Check the order can still change",
        )
        self._commercial = eligibility.commercial
        return eligibility

    async def price_change(self) -> ChangeQuote:
        """Step 2: 'Explain any additional costs for changes' - the difference, priced."""
        request = self._request
        quote = await self.call(
            CaseActivities.quote_order_change,
            QuoteAsk(
                case_id=self.case_id,
                order_id=self._order_id,
                kind=request.kind,
                sku=request.sku,
                quantity=request.quantity,
                new_sku=request.new_sku,
                price_adjustment=request.price_adjustment,
            ),
            summary="Price the change",
        )
        if quote.change is not None:
            # The reason rides with the change: the order's note is written with it.
            self._change = quote.change.model_copy(update={"reason": request.reason})
            quote = quote.model_copy(update={"change": self._change})
            await self.record(
                "change_quoted",
                detail={
                    "change": self._change.described(),
                    "difference": f"{self._change.difference:.2f}",
                    "adjustment": f"{quote.adjustment:.2f}",
                },
            )
        return quote

    async def authorize_adjustment(self, adjustment: Decimal) -> Outcome | None:
        """Manager Authorization: 'Commercial pricing adjustments', through the gate."""
        approval = await self.gate.await_manager_decision(
            amount=adjustment,
            reason=f"commercial pricing adjustment of {adjustment:.2f} on order "
            f"{self._order_id}: {self._request.reason}",
            requested_by=self._requested_by,
            kind=ApprovalKind.PRICING_ADJUSTMENT,
            rule=COMMERCIAL_PRICING,
        )
        if approval.status is ApprovalStatus.APPROVED:
            return None
        if approval.status is ApprovalStatus.EXPIRED:
            return await self.finish(
                CaseStatus.EXPIRED,
                reason="the price adjustment was not authorized in time",
                template="order_change_refused",
            )
        note = f": {approval.note}" if approval.note else ""
        return await self.refuse(f"the price adjustment was not authorized by a manager{note}")

    async def send_quote(self, quote: ChangeQuote) -> None:
        """Step 2 (cont.): the quote emailed, with the instant it stands until."""
        change = self._change
        assert change is not None
        accept_by = self.rules.calendar.add_business_time(
            workflow.now(), self.rules.order_change.accept_within
        )
        self.reply.open(accept_by, self.sla)
        await self.notify(
            "order_change_quote",
            Recipient.CUSTOMER,
            status=CaseStatus.AWAITING_CUSTOMER,
            step=f"Waiting for the customer to accept a difference of {change.difference:.2f}",
            event="change_quote_sent",
            detail={
                "difference": f"{change.difference:.2f}",
                "accept_by": accept_by.isoformat(),
            },
            context={
                **self._money_context(change),
                "accept_by": self._instant(accept_by),
                "adjustment": (
                    f"It includes a price adjustment of {quote.adjustment:.2f}.\n"
                    if quote.adjustment
                    else ""
                ),
            },
        )

    async def await_acceptance(self) -> bool:
        """Step 3: the customer's acceptance, within CHANGE_ACCEPT_WITHIN of business time."""
        reply = self.reply
        assert reply.until is not None
        answered = await self.wait_until(
            reply.until, "The customer's answer to the quote", reply.given, clock=reply.clock
        )
        if not answered or reply.answer is None:
            return False
        await self.record(
            "change_accepted" if reply.yes else "change_declined",
            actor=reply.answer.answered_by,
            detail={"note": reply.answer.note, **relayed(reply.answer.on_behalf_of)},
        )
        return bool(reply.yes)

    async def not_accepted(self) -> Outcome:
        """Step 3 (cont.): no change - the order stays as it was, and the customer knows."""
        if self.reply.answer is not None:
            return await self.finish(
                CaseStatus.DECLINED,
                reason="the customer declined the quote; the order is unchanged",
                template="order_change_declined",
            )
        return await self.finish(
            CaseStatus.DECLINED,
            reason="the quote was not accepted in time; the order is unchanged",
            template="order_change_quote_expired",
        )

    async def make_change(self, change: OrderChange) -> Outcome:
        """Step 4: charge first (a decline changes nothing), apply, refund a reduction,
        'Send confirmation email for all changes'."""
        await self.record("applying", status=CaseStatus.APPLYING, step="Applying the change")
        if change.difference > 0:
            ended = await self.charge_difference(change)
            if ended is not None:
                return ended
        refusal = await self.apply(change)
        if refusal:
            return await self.shipped_meanwhile(change, refusal)
        if change.difference < 0:
            receipt = await self.refund_money(-change.difference, status=CaseStatus.APPLYING)
            if isinstance(receipt, Outcome):
                return receipt
            self._refund = receipt.reference
        reason = f"changed: {change.described()}"
        return await self.finish(
            CaseStatus.COMPLETED,
            reason=reason,
            template="order_change_confirmed",
            context=self._money_context(change),
            outcome=Outcome(
                status=CaseStatus.COMPLETED,
                reason=reason,
                amount=abs(change.difference),
                reference=self._charge or self._refund,
            ),
        )

    async def charge_difference(self, change: OrderChange) -> Outcome | None:
        """Charge what the change adds, once (ChargeLedger, key ``<case id>/change``)."""
        try:
            receipt = await self.effect(
                CaseActivities.charge_order_change,
                FeeCharge(
                    case_id=self.case_id,
                    idempotency_key=f"{self.case_id}/change",
                    order_id=self._order_id,
                    customer_id=self._customer_id,
                    amount=change.difference,
                    charged_at=workflow.now(),
                ),
                schedule_to_close=self.rules.payment_retry_for,
                retry=PAYMENT_RETRY,
                summary=f"Charge {change.difference:.2f} for the change",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "NotChangeable":
                return await self.refuse(cause.message)
            if isinstance(cause, ApplicationError) and cause.type == "PaymentDeclined":
                return await self.finish(
                    CaseStatus.DECLINED,
                    reason=f"the payment of {change.difference:.2f} was declined "
                    f"({cause.message}); the order is unchanged",
                    template="order_change_payment_declined",
                    context=self._money_context(change),
                )
            raise  # the gateway stayed down: needs_attention, Accounting told (faults.py)
        self._charge = receipt.reference
        await self.record("change_charged", detail={"reference": receipt.reference})
        return None

    async def apply(self, change: OrderChange) -> str:
        """Apply the change once, its reason in the order's notes; why not, if refused."""
        applied = await self.effect(
            CaseActivities.apply_order_change,
            ChangeApplication(
                case_id=self.case_id,
                order_id=self._order_id,
                change=change.model_copy(update={"address": self._request.address}),
                at=workflow.now(),
            ),
            summary="Apply the change in the order system",
        )
        if applied.refusal:
            return applied.refusal
        self._applied = True
        await self.record("change_applied", detail={"change": change.described()})
        return ""

    async def shipped_meanwhile(self, change: OrderChange, refusal: str) -> Outcome:
        """The order left processing after the quote: nothing changes, a charge goes back."""
        if self._charge is not None:
            receipt = await self.refund_money(change.difference, status=CaseStatus.APPLYING)
            if isinstance(receipt, Outcome):
                return receipt
            self._refund = receipt.reference
            refusal += f"; the {change.difference:.2f} charged for it was refunded"
        return await self.refuse(refusal)

    async def refuse(self, reason: str) -> Outcome:
        """The change cannot be made: 'rejected', and the customer told why."""
        return await self.finish(
            CaseStatus.REJECTED, reason=reason, template="order_change_refused"
        )

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.update(name="accept_change")
    async def accept_change(self, answer: ChangeAnswer) -> OrderChangeState:
        """The customer accepts the quote; refused once it expired."""
        self.reply.take(answer, True)
        return self.state_as(OrderChangeState)

    @accept_change.validator
    def _validate_accept(self, answer: ChangeAnswer) -> None:
        self.reply.refuse(answer, True, waiting=self._quoted())

    @workflow.update(name="decline_change")
    async def decline_change(self, answer: ChangeAnswer) -> OrderChangeState:
        """The customer declines the quote; the order stays as it is."""
        self.reply.take(answer, False)
        return self.state_as(OrderChangeState)

    @decline_change.validator
    def _validate_decline(self, answer: ChangeAnswer) -> None:
        self.reply.refuse(answer, False, waiting=self._quoted())

    @workflow.signal(name="change_accepted")
    async def change_accepted(self, payload: dict[str, Any]) -> None:
        """The same acceptance, fire-and-forget (Temporal UI); a late one is recorded, ignored."""
        await self.reply.by_signal(
            self, "change_accepted", ChangeAnswer, payload, True, waiting=self._quoted
        )

    @workflow.signal(name="change_declined")
    async def change_declined(self, payload: dict[str, Any]) -> None:
        await self.reply.by_signal(
            self, "change_declined", ChangeAnswer, payload, False, waiting=self._quoted
        )

    def _quoted(self) -> bool:
        """The case waits for the customer's answer to its quote."""
        return self._status is CaseStatus.AWAITING_CUSTOMER

    # ---- what callers and emails see -------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        change = self._change
        return {
            **super().extra_state(),
            "kind": self._request.kind,
            "change": change.described() if change else None,
            "difference": change.difference if change else None,
            "price_adjustment": self._request.price_adjustment,
            "commercial": self._commercial,
            "accept_by": self.reply.until,
            "answer": self.reply.said("accepted", "declined"),
            "applied": self._applied,
            "charge_reference": self._charge,
            "refund_reference": self._refund,
        }

    def _money_context(self, change: OrderChange) -> dict[str, str]:
        """What changes and what it costs, in words for the customer's emails."""
        difference = change.difference
        if difference > 0:
            money = f"The change costs {difference:.2f} {self.rules.currency} more."
        elif difference < 0:
            money = f"The change takes {-difference:.2f} {self.rules.currency} off your order."
        else:
            money = "The change costs nothing."
        return {"change": change.described(), "money": money}

    def _instant(self, instant: datetime) -> str:
        local = self.rules.calendar.local(instant)
        return f"{local:%A %B} {local.day}, {local:%H:%M %Z}"
