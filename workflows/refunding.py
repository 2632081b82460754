"""Paying money back: shared by every procedure that ends in a refund (refunds, returns).

SOP steps 2-5 of 'How to Process a Refund': manager authorization over the threshold, the
customer's choice of store credit, the idempotent payment, and the confirmation email.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError

from workflows.case import CaseWorkflow

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy
    from workflows.models import (
        ApprovalStatus,
        CaseStatus,
        OrderVerdict,
        Outcome,
        Recipient,
        RefundHold,
        RefundInstruction,
        RefundMethod,
        RefundReceipt,
        RefundRelease,
        StoreCreditChoice,
    )

# A gateway outage is retried with backoff, for the case's PAYMENT_RETRY_FOR at most (a
# person must act after that); a decline is final.
PAYMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["PaymentDeclined", "NotRefundable", "InvalidRequest"],
)


def relayed(on_behalf_of: str | None) -> dict[str, str]:
    """The person a relaying service acted for: audit detail, never the actor."""
    return {"on_behalf_of": on_behalf_of} if on_behalf_of else {}


def _not_authorized(note: str) -> str:
    return f"not authorized by a manager: {note}" if note else "not authorized by a manager"


class RefundingCase(CaseWorkflow):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refund_method = RefundMethod.ORIGINAL_PAYMENT
        self._refund_started = False
        # The amount held on the order for this case's payment, while one is held by the
        # case itself (a return holds from its RA on; a refund holds inside issue_refund).
        self._holding: Decimal | None = None

    @property
    def refund_key(self) -> str:
        """The payment's idempotency key, and its reservation's."""
        return f"{self.case_id}/refund"

    def extra_state(self) -> dict[str, Any]:
        return {"refund_method": self.refund_method}

    @workflow.signal(name="choose_store_credit")
    async def choose_store_credit(self, payload: dict[str, Any]) -> None:
        """SOP: 'Offer store credit for faster processing' - the customer takes it."""
        choice = await self.parse_signal("store_credit_chosen", StoreCreditChoice, payload)
        if choice is None:
            return
        if self._refund_started:
            # The money is already on its way by the other method; changing it now would pay twice.
            await self.record(
                "store_credit_ignored",
                actor=choice.chosen_by,
                detail={"reason": "the refund was already issued"},
            )
            return
        self.refund_method = RefundMethod.STORE_CREDIT
        await self.record(
            "store_credit_chosen", actor=choice.chosen_by, detail=relayed(choice.on_behalf_of)
        )

    async def settle_refund(self, amount: Decimal, *, reason: str, requested_by: str) -> Outcome:
        """Manager authorization when required, then the refund itself."""
        if policy.refund_needs_manager(amount, self.rules):
            approval = await self.gate.await_manager_decision(
                amount=amount, reason=reason, requested_by=requested_by
            )
            if approval.status is ApprovalStatus.EXPIRED:
                return await self.finish(
                    CaseStatus.EXPIRED,
                    reason="manager authorization was not given in time",
                    template="refund_expired",
                )
            if approval.status is ApprovalStatus.REJECTED:
                return await self.finish(
                    CaseStatus.REJECTED,
                    reason=_not_authorized(approval.note),
                    template="refund_rejected",
                )
        return await self.issue_refund(amount)

    async def issue_refund(self, amount: Decimal) -> Outcome:
        """SOP: 'Process authorized refunds or credits', then confirm to the customer."""
        method = self.refund_method
        receipt = await self.refund_money(amount, status=CaseStatus.REFUNDING)
        if isinstance(receipt, Outcome):
            return receipt
        timeline = policy.refund_timeline(method)
        return await self.finish(
            CaseStatus.COMPLETED,
            reason=f"refunded {amount:.2f} as {method.value.replace('_', ' ')}",
            template="refund_confirmed",
            context={
                "method": method.value.replace("_", " "),
                "timeline": timeline,
                "reference": receipt.reference,
            },
            outcome=Outcome(
                status=CaseStatus.COMPLETED,
                amount=receipt.amount,
                method=method,
                reference=receipt.reference,
                timeline=timeline,
            ),
        )

    async def refund_money(self, amount: Decimal, *, status: CaseStatus) -> RefundReceipt | Outcome:
        """Pay ``amount`` back by the chosen method: the receipt, or the case's ending when
        the order cannot refund it, the payment is declined or the gateway stays down."""
        self._refund_started = True
        method = self.refund_method
        await self.record(
            "refund_started",
            detail={"method": method.value},
            status=status,
            step=f"Issuing {amount:.2f} as {method.value.replace('_', ' ')}",
        )
        instruction = RefundInstruction(
            case_id=self.case_id,
            idempotency_key=self.refund_key,
            order_id=self._order_id,
            customer_id=self._customer_id,
            amount=amount,
            method=method,
            issued_at=workflow.now(),
        )
        try:
            return await self.pay(instruction)
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "NotRefundable":
                return await self.finish(
                    CaseStatus.REJECTED, reason=cause.message, template="refund_rejected"
                )
            if isinstance(cause, ApplicationError) and cause.type == "PaymentDeclined":
                self._holding = None  # the activity released it with the decline
                return await self.escalate_decline(amount, cause.message)
            if _gateway_stayed_down(err):
                return await self.escalate_outage(instruction, _last_failure(err))
            raise

    async def reserve(self, amount: Decimal) -> OrderVerdict:
        """Hold ``amount`` of the order for this case's refund (or set the hold to it)."""
        hold = RefundHold(
            case_id=self.case_id,
            idempotency_key=self.refund_key,
            order_id=self._order_id,
            customer_id=self._customer_id,
            amount=amount,
        )
        verdict = await self.effect(
            CaseActivities.reserve_refund, hold, summary=f"Reserve {amount:.2f} on the order"
        )
        if verdict.ok:
            self._holding = amount
            await self.record("refund_reserved", detail={"amount": f"{amount:.2f}"})
        return verdict

    async def finish(
        self,
        status: CaseStatus,
        *,
        reason: str = "",
        template: str | None = None,
        context: dict[str, str] | None = None,
        outcome: Outcome | None = None,
    ) -> Outcome:
        """End the case; an amount it still holds goes back to the order unless it was paid."""
        if self._holding is not None and status is not CaseStatus.COMPLETED:
            await self.release_reservation(self.refund_key)
        return await super().finish(
            status, reason=reason, template=template, context=context, outcome=outcome
        )

    async def pay(self, instruction: RefundInstruction) -> RefundReceipt:
        """The payment, from a reservation on the order, retried while the gateway is out."""
        amount, method = instruction.amount, instruction.method
        return await self.effect(
            CaseActivities.issue_refund,
            instruction,
            # Every attempt and every wait between them: an outage longer than this is
            # handed to a person instead of retried for ever.
            schedule_to_close=self.rules.payment_retry_for,
            retry=PAYMENT_RETRY,
            summary=f"Refund {amount:.2f} as {method.value}",
        )

    async def release_reservation(self, key: str) -> None:
        """Give the amount held for the payment ``key`` back to the order: it will not be paid."""
        self._holding = None
        released = await self.effect(
            CaseActivities.release_refund,
            RefundRelease(case_id=self.case_id, idempotency_key=key),
            summary="Release the reserved amount",
        )
        if released:
            await self.record("refund_released", detail={"idempotency_key": key})

    async def escalate_outage(self, instruction: RefundInstruction, why: str) -> Outcome:
        """SOP: 'Escalate complex billing issues to accounting' - the gateway stayed down."""
        key = instruction.idempotency_key
        await self.release_reservation(key)
        await self.notify(
            "payment_unavailable",
            Recipient.DEPARTMENT,
            department="accounting",
            context={
                "why": why,
                "idempotency_key": key,
                "retried_for": _duration(self.rules.payment_retry_for),
            },
            detail={"why": why},
        )
        return await self.finish(
            CaseStatus.NEEDS_ATTENTION,
            reason=(
                f"payment gateway unavailable for {_duration(self.rules.payment_retry_for)} "
                f"({why}); escalated to Accounting"
            ),
        )

    async def escalate_decline(self, amount: Decimal, why: str) -> Outcome:
        """SOP: 'Escalate complex billing issues to accounting' - never drop the case."""
        await self.notify(
            "payment_declined",
            Recipient.DEPARTMENT,
            department="accounting",
            context={"why": why},
            detail={"why": why},
        )
        return await self.finish(
            CaseStatus.NEEDS_ATTENTION,
            reason=f"payment declined ({why}); escalated to Accounting",
        )


def _gateway_stayed_down(err: ActivityError) -> bool:
    """PAYMENT_RETRY_FOR ran out while the gateway was unavailable or did not answer.

    Anything else that outlasts it (the database down, a bug) is not the gateway's: it is
    left to fail the case as an unexpected failure, its reservation kept for whoever looks.
    """
    if err.retry_state is not RetryState.TIMEOUT:
        return False
    cause = err.cause
    if isinstance(cause, TimeoutError):
        return True  # the last attempt was still waiting for the gateway
    return isinstance(cause, ApplicationError) and cause.type == "PaymentUnavailable"


def _last_failure(err: ActivityError) -> str:
    """What the last attempt said before the retry window closed."""
    cause = err.cause
    if isinstance(cause, TimeoutError) and isinstance(cause.cause, ApplicationError):
        cause = cause.cause
    return cause.message if isinstance(cause, ApplicationError) else "no answer in time"


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
