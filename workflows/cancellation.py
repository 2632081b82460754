"""CancellationWorkflow: the SOP 'Order Cancellations' (docs/cancellations.md).

Confirm the request and its reason, authorize the refund over the threshold, then let the
order system decide (the arbiter between the case and the warehouse): cancelled, the money
goes back by the shared refund mechanism (store credit if the customer takes it) and the
customer learns the timeline and method; shipped, nothing is refunded and a return is offered,
opened as a case of its own, linked both ways, when the customer takes it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow

from workflows.answers import Reply
from workflows.journal import ACTIVITY_TIMEOUT, DEFAULT_RETRY
from workflows.refunding import RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cancellation import LinkedCases
    from activities.cases import CaseActivities
    from workflows import policy, visibility
    from workflows.cancellation_models import (
        CancellationCheck,
        CancellationRequest,
        CancellationState,
        LinkedReturn,
        OrderCancellation,
        OrderStanding,
        ReturnAnswer,
    )
    from workflows.models import ApprovalStatus, CaseStatus, CaseType, Outcome, Recipient
    from workflows.sla_models import Clock

# What the order system answers when it cannot cancel: the order left the warehouse.
LEFT_THE_WAREHOUSE = ("shipped", "delivered")


@workflow.defn
class CancellationWorkflow(RefundingCase):
    """Confirm, authorize, cancel (or offer a return), refund, tell the customer."""

    case_type = CaseType.CANCELLATION
    state_model = CancellationState

    @workflow.init
    def __init__(self, request: CancellationRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=None,
            requested_by=request.requested_by,
        )
        self._request = request
        self._order_outcome: str | None = None
        self._refund_amount: Decimal | None = None
        self.reply: Reply[ReturnAnswer] = Reply(
            offer="return offer",
            expired="OfferExpired",
            pending="NoOfferPending",
            show=lambda until: f"{until:%Y-%m-%d %H:%M} UTC",
            clock=Clock.CANCELLATION_RETURN_OFFER,
        )
        self._return_case_id: str | None = None

    @workflow.run
    async def run(self, request: CancellationRequest) -> Outcome:
        await self.open_case(request)
        standing = await self.confirm_request(request)
        if standing.refusal:
            return await self.finish(
                CaseStatus.REJECTED, reason=standing.refusal, template="cancellation_rejected"
            )
        if standing.status == "processing":
            refused = await self.authorize_refund(standing.refundable)
            if refused is not None:
                return refused
        outcome = await self.cancel_in_order_system(request)
        if outcome == "cancelled":
            return await self.refund_and_confirm(standing.refundable)
        # Not cancellable: nothing is refunded, and what was held goes back to the order now
        # (the return's own refund will need it), not when the offer closes.
        if self._holding is not None:
            await self.release_reservation(self.refund_key)
        if outcome in LEFT_THE_WAREHOUSE and standing.lines:
            return await self.offer_return(outcome, standing)
        if outcome in LEFT_THE_WAREHOUSE:
            return await self.finish(
                CaseStatus.CLOSED,
                reason=f"order {self._order_id} has already {outcome} and lists no items to return",
                template="cancellation_closed",
            )
        return await self.finish(
            CaseStatus.CLOSED,
            reason=f"order {self._order_id} was already cancelled; nothing more to refund",
            template="cancellation_closed",
        )

    # ---- the steps -----------------------------------------------------------------------

    async def confirm_request(self, request: CancellationRequest) -> OrderStanding:
        """Step 1: 'Confirm cancellation request and reason' - recorded, the order read."""
        await self.record(
            "cancellation_requested",
            actor=request.requested_by,
            detail={"reason": request.reason, "reason_text": request.reason_text},
            status=CaseStatus.VERIFYING,
            step="Confirming the request and the order",
        )
        if request.reason not in self.rules.cancellation.reasons:
            # The entry points refuse it (422); a typed client that did not is refused here.
            return OrderStanding(refusal=f"unknown cancellation reason {request.reason!r}")
        standing = await self.call(
            CaseActivities.assess_cancellation,
            CancellationCheck(
                case_id=self.case_id, order_id=self._order_id, customer_id=self._customer_id
            ),
            summary="Read the order",
        )
        if not standing.refusal:
            # What the cancellation would refund: the case's amount, listed and searchable.
            self._amount = standing.refundable
            workflow.upsert_search_attributes(
                [visibility.AMOUNT.value_set(float(standing.refundable))]
            )
        await self.record(
            "order_assessed",
            detail={
                "order_status": standing.status,
                "refundable": f"{standing.refundable:.2f}",
                "refusal": standing.refusal,
            },
        )
        return standing

    async def authorize_refund(self, amount: Decimal) -> Outcome | None:
        """Step 2: hold what the order still holds for the refund; a manager decides over
        REFUND_APPROVAL_ABOVE (the gate) before anything is cancelled. The case's ending
        when the manager does not authorize it, else None."""
        if amount <= 0:
            return None
        held = await self.reserve(amount)
        if not held.ok:
            return await self.finish(
                CaseStatus.REJECTED, reason=held.reason, template="cancellation_rejected"
            )
        if not policy.refund_needs_manager(amount, self.rules):
            return None
        approval = await self.gate.await_manager_decision(
            amount=amount,
            reason=f"cancellation of order {self._order_id} ({self._request.reason})",
            requested_by=self._requested_by,
        )
        if approval.status is ApprovalStatus.APPROVED:
            return None
        why = (
            "manager authorization was not given in time"
            if approval.status is ApprovalStatus.EXPIRED
            else "not authorized by a manager" + (f": {approval.note}" if approval.note else "")
        )
        return await self.finish(
            CaseStatus.EXPIRED
            if approval.status is ApprovalStatus.EXPIRED
            else CaseStatus.REJECTED,
            reason=f"{why}; the order was not cancelled",
            template="cancellation_rejected",
        )

    async def cancel_in_order_system(self, request: CancellationRequest) -> str:
        """Step 3: 'Process if order hasn't shipped' - the order system is the arbiter; the
        reason is noted on the order 'for trend analysis' in the same step."""
        verdict = await self.effect(
            CaseActivities.cancel_order,
            OrderCancellation(
                case_id=self.case_id,
                order_id=self._order_id,
                reason=request.reason,
                reason_text=request.reason_text,
                at=workflow.now(),
            ),
            summary=f"Cancel order {self._order_id}",
        )
        self._order_outcome = verdict.outcome
        await self.record(
            "order_cancelled" if verdict.outcome == "cancelled" else "order_not_cancellable",
            detail={"order_status": verdict.outcome},
        )
        return verdict.outcome

    async def refund_and_confirm(self, amount: Decimal) -> Outcome:
        """Step 4: refund what was paid (once, by the chosen method), then 'Explain refund
        timeline and method'."""
        method = self.refund_method
        reference = ""
        if amount > 0:
            receipt = await self.refund_money(amount, status=CaseStatus.REFUNDING)
            if isinstance(receipt, Outcome):
                return receipt
            self._holding = None  # paid from the hold: nothing is held any more
            self._refund_amount, reference = receipt.amount, receipt.reference
        timeline = policy.refund_timeline(method)
        shown = method.value.replace("_", " ")
        currency = self.rules.currency
        return await self.finish(
            CaseStatus.CANCELLED,
            reason=f"order cancelled; refunded {amount:.2f} as {shown}",
            template="cancellation_confirmed",
            context={
                "refund": (
                    f"We are refunding {amount:.2f} {currency} as {shown}. You will see it "
                    f"{timeline}.\nReference: {reference}."
                    if reference
                    else "Nothing was left to refund on it."
                ),
            },
            outcome=Outcome(
                status=CaseStatus.CANCELLED,
                reason="order cancelled",
                amount=amount,
                method=method,
                reference=reference or None,
                timeline=timeline,
            ),
        )

    async def offer_return(self, order_status: str, standing: OrderStanding) -> Outcome:
        """Step 3 (shipped): it cannot be cancelled - offer a return and wait CANCEL_OFFER_WAIT
        for the customer's answer."""
        until = workflow.now() + self.rules.cancellation.offer_wait
        self.reply.open(until, self.sla)
        await self.notify(
            "cancellation_return_offered",
            Recipient.CUSTOMER,
            status=CaseStatus.AWAITING_CUSTOMER,
            step="Waiting for the customer's answer to the return offer",
            event="return_offered",
            detail={"order_status": order_status, "offer_until": until.isoformat()},
            context={"order_status": order_status, "answer_by": self._instant(until)},
        )
        answered = await self.wait_until(
            until,
            "The customer's answer to the return offer",
            self.reply.given,
            clock=self.reply.clock,
        )
        if not answered:
            return await self.finish(
                CaseStatus.CLOSED,
                reason="the customer did not answer the return offer in time",
                template="cancellation_closed",
            )
        answer = self.reply.answer
        assert answer is not None
        detail = {"note": answer.note, **relayed(answer.on_behalf_of)}
        if not self.reply.yes:
            await self.record("return_declined", actor=answer.answered_by, detail=detail)
            return await self.finish(
                CaseStatus.CLOSED,
                reason="the customer declined the return offered",
                template="cancellation_closed",
            )
        await self.record("return_requested", actor=answer.answered_by, detail=detail)
        return await self.open_return(order_status, standing, answer)

    async def open_return(
        self, order_status: str, standing: OrderStanding, answer: ReturnAnswer
    ) -> Outcome:
        """Step 3 (cont.): the return is a case of its own (its own lifecycle), linked both
        ways: it names this case, this case names it."""
        self._return_case_id = await workflow.execute_activity_method(
            LinkedCases.open_linked_return,
            LinkedReturn(
                case_id=self.case_id,
                order_id=self._order_id,
                customer_id=self._customer_id,
                items=standing.lines,
                reason=f"cancellation requested after the order {order_status} "
                f"({self._request.reason})",
                requested_by=answer.answered_by,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DEFAULT_RETRY,
            summary="Open the return case",
        )
        return await self.finish(
            CaseStatus.CONVERTED_TO_RETURN,
            reason=f"converted to return case {self._return_case_id}",
            template="cancellation_converted",
            context={"return_case_id": self._return_case_id},
        )

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.update(name="request_return")
    async def request_return(self, answer: ReturnAnswer) -> CancellationState:
        """The customer takes the return offered; refused once the offer expired."""
        self.reply.take(answer, True)
        return self.state_as(CancellationState)

    @request_return.validator
    def _validate_request(self, answer: ReturnAnswer) -> None:
        self.reply.refuse(answer, True, waiting=self._offered())

    @workflow.update(name="decline_return")
    async def decline_return(self, answer: ReturnAnswer) -> CancellationState:
        """The customer declines the return offered: the case closes."""
        self.reply.take(answer, False)
        return self.state_as(CancellationState)

    @decline_return.validator
    def _validate_decline(self, answer: ReturnAnswer) -> None:
        self.reply.refuse(answer, False, waiting=self._offered())

    @workflow.signal(name="return_requested")
    async def return_requested(self, payload: dict[str, Any]) -> None:
        """The same answer, fire-and-forget (Temporal UI); a late one is recorded, ignored."""
        await self.reply.by_signal(
            self, "return_requested", ReturnAnswer, payload, True, waiting=self._offered
        )

    @workflow.signal(name="return_declined")
    async def return_declined(self, payload: dict[str, Any]) -> None:
        await self.reply.by_signal(
            self, "return_declined", ReturnAnswer, payload, False, waiting=self._offered
        )

    def _offered(self) -> bool:
        """The case waits for the customer's answer to the return it offered."""
        return self._status is CaseStatus.AWAITING_CUSTOMER

    # ---- what callers and emails see -------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {
            **super().extra_state(),
            "reason": self._request.reason,
            "reason_text": self._request.reason_text,
            "order_outcome": self._order_outcome,
            "refund_amount": self._refund_amount,
            "offer_until": self.reply.until,
            "return_answer": self.reply.said("requested", "declined"),
            "return_case_id": self._return_case_id,
        }

    def _instant(self, instant: datetime) -> str:
        local = self.rules.calendar.local(instant)
        return f"{local:%A %B} {local.day}, {local:%H:%M %Z}"
