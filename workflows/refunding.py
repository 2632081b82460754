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
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policy
    from workflows.case import CaseWorkflow
    from workflows.models import (
        ApprovalStatus,
        CaseStatus,
        Outcome,
        Recipient,
        RefundInstruction,
        RefundMethod,
        RefundReceipt,
        StoreCreditChoice,
    )

# A gateway outage is retried with backoff for as long as it lasts; a decline is final.
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
        self._refund_started = True
        method = self.refund_method
        await self.record(
            "refund_started",
            detail={"method": method.value},
            status=CaseStatus.REFUNDING,
            step=f"Issuing {amount:.2f} as {method.value.replace('_', ' ')}",
        )
        instruction = RefundInstruction(
            case_id=self.case_id,
            idempotency_key=f"{self.case_id}/refund",
            order_id=self._order_id,
            customer_id=self._customer_id,
            amount=amount,
            method=method,
            issued_at=workflow.now(),
        )
        try:
            receipt = await self.call(
                "issue_refund",
                instruction,
                RefundReceipt,
                summary=f"Refund {amount:.2f} as {method.value}",
                retry=PAYMENT_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "NotRefundable":
                return await self.finish(
                    CaseStatus.REJECTED, reason=cause.message, template="refund_rejected"
                )
            if isinstance(cause, ApplicationError) and cause.type == "PaymentDeclined":
                return await self.escalate_decline(amount, cause.message)
            raise

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
