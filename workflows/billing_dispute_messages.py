"""What a billing dispute's case accepts while it runs, and why a message cannot apply now:
an agent's resolution or escalation to Accounting, and Accounting's answer, each as an update
(the sender hears a refusal to its face) and as a signal (the Temporal UI; a refusal is
recorded and ignored). BillingDisputeWorkflow (workflows/billing_dispute.py) runs the steps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.refunding import RefundingCase

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from workflows.billing_dispute_models import (
        BillingDisputeRequest,
        BillingDisputeState,
        DisputeEscalation,
        DisputeResolution,
        InvoiceBreakdown,
    )
    from workflows.models import CaseStatus

Refusal = tuple[str, str]  # (kind, message): the update's ApplicationError type and text


class DisputeMessages(RefundingCase):
    """The dispute's messages and their refusals, over the state the workflow keeps."""

    _request: BillingDisputeRequest
    _breakdown: InvoiceBreakdown | None
    _resolution: DisputeResolution | None  # an agent's
    _escalation: DisputeEscalation | None
    _answer: DisputeResolution | None  # Accounting's
    _accounting_due: datetime | None

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.update(name="resolve_dispute")
    async def resolve_dispute(self, resolution: DisputeResolution) -> BillingDisputeState:
        """An agent settles the dispute: refund, credit or no change, with the explanation."""
        if self._resolution is None:
            self._resolution = resolution
        return self.state_as(BillingDisputeState)

    @resolve_dispute.validator
    def _validate_resolve(self, resolution: DisputeResolution) -> None:
        _refuse(self._resolution_refusal(resolution))

    @workflow.signal(name="dispute_resolved")
    async def dispute_resolved(self, payload: dict[str, Any]) -> None:
        """The same, fire-and-forget (Temporal UI): no change only (DisputeResolution.unproven)."""
        resolution = await self.parse_signal("dispute_resolved", DisputeResolution, payload)
        if resolution is None:
            return
        refusal = self._resolution_refusal(resolution) or resolution.unproven()
        if refusal is not None:
            await self._ignored("dispute_resolved", resolution.resolved_by, refusal)
            return
        self._resolution = self._resolution or resolution

    @workflow.update(name="escalate_dispute")
    async def escalate_dispute(self, escalation: DisputeEscalation) -> BillingDisputeState:
        """An agent sends the dispute to Accounting."""
        if self._escalation is None:
            self._escalation = escalation
        return self.state_as(BillingDisputeState)

    @escalate_dispute.validator
    def _validate_escalate(self, escalation: DisputeEscalation) -> None:
        _refuse(self._escalation_refusal(escalation))

    @workflow.signal(name="dispute_escalated")
    async def dispute_escalated(self, payload: dict[str, Any]) -> None:
        escalation = await self.parse_signal("dispute_escalated", DisputeEscalation, payload)
        if escalation is None:
            return
        refusal = self._escalation_refusal(escalation)
        if refusal is not None:
            await self._ignored("dispute_escalated", escalation.escalated_by, refusal)
            return
        self._escalation = self._escalation or escalation

    @workflow.update(name="answer_dispute")
    async def answer_dispute(self, answer: DisputeResolution) -> BillingDisputeState:
        """Accounting settles an escalated dispute (the same choices as an agent)."""
        if self._answer is None:
            self._answer = answer
        return self.state_as(BillingDisputeState)

    @answer_dispute.validator
    def _validate_answer(self, answer: DisputeResolution) -> None:
        _refuse(self._answer_refusal(answer))

    @workflow.signal(name="accounting_answer")
    async def accounting_answer(self, payload: dict[str, Any]) -> None:
        """The same, fire-and-forget (Temporal UI): no change only (DisputeResolution.unproven)."""
        answer = await self.parse_signal("accounting_answer", DisputeResolution, payload)
        if answer is None:
            return
        refusal = self._answer_refusal(answer) or answer.unproven()
        if refusal is not None:
            await self._ignored("accounting_answer", answer.resolved_by, refusal)
            return
        self._answer = self._answer or answer

    # ---- why a message cannot apply now --------------------------------------------------------

    def _resolution_refusal(self, resolution: DisputeResolution) -> Refusal | None:
        held = self._resolution
        if held is not None:
            if held.event_id == resolution.event_id:
                return None  # the same resolution again: a retry, answered as before
            return ("AlreadyResolved", f"{held.resolved_by} already resolved this dispute")
        if self._escalation is not None:
            return ("WithAccounting", "the dispute was escalated: Accounting answers it")
        return self._reviewing() or self._over_refundable(resolution)

    def _escalation_refusal(self, escalation: DisputeEscalation) -> Refusal | None:
        held = self._escalation
        if held is not None:
            if held.event_id == escalation.event_id:
                return None
            return ("AlreadyEscalated", f"{held.escalated_by} already escalated this dispute")
        if self._resolution is not None:
            return ("AlreadyResolved", "the dispute was already resolved")
        return self._reviewing()

    def _answer_refusal(self, answer: DisputeResolution) -> Refusal | None:
        held = self._answer
        if held is not None:
            if held.event_id == answer.event_id:
                return None
            return ("AlreadyAnswered", f"{held.resolved_by} already answered this dispute")
        if self._status is not CaseStatus.WITH_ACCOUNTING:
            return ("NotWithAccounting", f"the dispute is not with Accounting ({self._status})")
        due = self._accounting_due
        if due is not None and workflow.now() >= due:
            return ("AnswerOverdue", "Accounting's answer came after the case was handed over")
        return self._over_refundable(answer)

    def _reviewing(self) -> Refusal | None:
        if self._breakdown is None:
            return ("NotReviewed", "the charges are still being reviewed: try again shortly")
        if self._status is not CaseStatus.REVIEWING:
            return (
                "NotReviewing",
                f"the dispute is not waiting for an agent's resolution ({self._status})",
            )
        return None

    def _over_refundable(self, resolution: DisputeResolution) -> Refusal | None:
        """More than the order could still refund at the review: refused to the sender's face
        (should it change since, the ledger refuses the payment and the case ends rejected)."""
        breakdown = self._breakdown
        amount = resolution.amount
        if breakdown is None or amount is None or amount <= breakdown.refundable:
            return None
        return (
            "OverRefundable",
            f"only {breakdown.refundable:.2f} of order {self._order_id} can still be refunded",
        )

    async def _ignored(self, name: str, actor: str, refusal: Refusal) -> None:
        await self.record(f"{name}_ignored", actor=actor, detail={"reason": refusal[1]})

    def _agent_acted(self) -> bool:
        return self._resolution is not None or self._escalation is not None

    def _answered(self) -> bool:
        return self._answer is not None


def _refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise ApplicationError(refusal[1], type=refusal[0], non_retryable=True)
