"""BillingDisputeWorkflow: the SOP 'Billing Disputes' (docs/billing-disputes.md).

Review the order's charges and email the invoice breakdown, then wait for an agent: a
refund or credit (over REFUND_APPROVAL_ABOVE through the gate) or no change, or an
escalation to Accounting (Department Transfers: ext. 203), whose silence follows the gate's
business-hour ladder. The resolution is documented on the order and the customer told.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.refunding import RefundingCase
from workflows.sla import RunningClock

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy
    from workflows.billing_dispute_models import (
        BillingDisputeRequest,
        BillingDisputeState,
        BillingReview,
        DisputeEscalation,
        DisputeNote,
        DisputeOutcome,
        DisputeResolution,
        InvoiceBreakdown,
    )
    from workflows.models import (
        ApprovalStatus,
        CaseStatus,
        CaseType,
        Outcome,
        Recipient,
        RefundMethod,
        RefundReceipt,
    )
    from workflows.sla_models import Clock

# An agent's silence: reminded after this many business days, the CS manager after twice as
# many. No expiry: the agent who opened the dispute owns it until it is settled.
AGENT_REMIND_AFTER_DAYS = 1

Refusal = tuple[str, str]  # (kind, message): the update's ApplicationError type and text


@workflow.defn
class BillingDisputeWorkflow(RefundingCase):
    """Review, explain with the invoice, settle (agent or Accounting), document, tell."""

    case_type = CaseType.BILLING_DISPUTE
    state_model = BillingDisputeState

    @workflow.init
    def __init__(self, request: BillingDisputeRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=request.disputed_amount,
            requested_by=request.requested_by,
        )
        self._request = request
        self._breakdown: InvoiceBreakdown | None = None
        self._resolution: DisputeResolution | None = None  # an agent's
        self._escalation: DisputeEscalation | None = None
        self._answer: DisputeResolution | None = None  # Accounting's
        self._accounting_due: datetime | None = None
        self._accounting_reminded = False
        self._accounting_escalated = False
        self._settled: DisputeResolution | None = None  # the one applied, by whomever
        self._response_clock: RunningClock | None = None

    @workflow.run
    async def run(self, request: BillingDisputeRequest) -> Outcome:
        await self.open_case(request)
        breakdown = await self.review_charges()
        if breakdown.refusal:
            return await self.finish(
                CaseStatus.REJECTED, reason=breakdown.refusal, template="billing_refused"
            )
        await self.explain_charges(breakdown)
        resolution = await self.await_agent()
        if resolution is None:
            resolution = await self.transfer_to_accounting()
            if resolution is None:
                return await self.accounting_silent()
        return await self.settle(resolution)

    # ---- the steps -----------------------------------------------------------------------

    async def review_charges(self) -> InvoiceBreakdown:
        """Step 1: 'Review billing details' - the order's lines, charges, refunds, totals."""
        await self.record(
            "reviewing_charges", status=CaseStatus.REVIEWING, step="Reviewing the charges"
        )
        breakdown = await self.call(
            CaseActivities.review_billing,
            BillingReview(
                case_id=self.case_id, order_id=self._order_id, customer_id=self._customer_id
            ),
            summary="Review the order's charges",
        )
        if not breakdown.refusal:  # no invoice, nothing a resolution could be judged by
            self._breakdown = breakdown
        return breakdown

    async def explain_charges(self, breakdown: InvoiceBreakdown) -> None:
        """Step 2: 'Explain charges and provide invoice breakdown' - emailed to the customer."""
        # Email Communication: the customer's dispute is answered by its agent within
        # EMAIL_RESPONSE business hours (the breakdown is only the automatic first answer).
        self._response_clock = self.sla.start(
            Clock.EMAIL_RESPONSE,
            within=self.rules.sla.email_response_within,
            owner=self._requested_by,
            staff_ids=(self._requested_by,),
        )
        await self.notify(
            "billing_invoice",
            Recipient.CUSTOMER,
            status=CaseStatus.REVIEWING,
            step="Waiting for an agent's resolution",
            event="invoice_sent",
            detail={
                "total": f"{breakdown.total:.2f}",
                "refunded": f"{breakdown.refunded:.2f}",
                "refundable": f"{breakdown.refundable:.2f}",
            },
            context={"breakdown": breakdown.table(self.rules.currency)},
        )

    async def await_agent(self) -> DisputeResolution | None:
        """Step 3: an agent resolves it, or escalates it (None). Silence reminds the agent who
        opened it after a business day, then the CS manager; it never expires."""
        calendar, opened = self.rules.calendar, workflow.now()
        remind_at = calendar.add_business_days(opened, AGENT_REMIND_AFTER_DAYS)
        if not await self.wait_until(remind_at, "Remind the agent", self._agent_acted):
            await self.notify(
                "billing_agent_reminder",
                Recipient.STAFF,
                staff_ids=(self._requested_by,),
                event="agent_reminded",
            )
        escalate_at = calendar.add_business_days(opened, 2 * AGENT_REMIND_AFTER_DAYS)
        if not await self.wait_until(escalate_at, "Tell the CS manager", self._agent_acted):
            await self.notify(
                "billing_agent_escalated", Recipient.CS_MANAGER, event="agent_silence_escalated"
            )
        await self.wait_condition(self._agent_acted, timeout_summary="An agent's resolution")
        await self.sla.stop(self._response_clock, met=True)  # late: breached at its due
        if self._escalation is not None:
            return None
        resolution = self._resolution
        assert resolution is not None
        await self.record(
            "dispute_resolved", actor=resolution.resolved_by, detail=resolution.audit_detail()
        )
        return resolution

    async def transfer_to_accounting(self) -> DisputeResolution | None:
        """Step 4 (Department Transfers: 'Billing issues: Accounting (ext. 203)'): the case,
        the breakdown and the reason to Accounting; their silence follows the gate's ladder
        on business hours (remind Accounting, tell the CS manager, give up: None)."""
        escalation, breakdown = self._escalation, self._breakdown
        assert escalation is not None and breakdown is not None
        await self.record(
            "dispute_escalated",
            actor=escalation.escalated_by,
            detail={"reason": escalation.reason},
        )
        remind_at, escalate_at, due_at = policy.approval_deadlines(self.rules, workflow.now())
        self._accounting_due = due_at
        context = {
            "breakdown": breakdown.table(self.rules.currency),
            "reason": escalation.reason,
            "escalated_by": escalation.escalated_by,
            "description": self._request.description,
            "due_at": self._instant(due_at),
        }
        answer_clock = self.sla.start(
            Clock.ACCOUNTING_ANSWER,
            due=due_at,
            owner="accounting",
            department="accounting",
            ends_at_due=True,
        )
        await self.notify(
            "billing_accounting_transfer",
            Recipient.DEPARTMENT,
            department="accounting",
            status=CaseStatus.WITH_ACCOUNTING,
            step="With Accounting (ext. 203)",
            event="transferred_to_accounting",
            context=context,
        )
        if not await self.wait_until(remind_at, "Remind Accounting", self._answered):
            self._accounting_reminded = True
            await self.notify(
                "billing_accounting_reminder",
                Recipient.DEPARTMENT,
                department="accounting",
                event="accounting_reminded",
                context=context,
            )
        if not await self.wait_until(escalate_at, "Tell the CS manager", self._answered):
            self._accounting_escalated = True
            await self.notify(
                "billing_accounting_escalated",
                Recipient.CS_MANAGER,
                event="accounting_escalated",
                context=context,
            )
        if not await self.wait_until(
            due_at, "Accounting's answer is overdue", self._answered, clock=answer_clock
        ):
            await self.notify(
                "billing_accounting_unanswered",
                Recipient.DEPARTMENT,
                department="accounting",
                event="accounting_unanswered",
                context=context,
                copy_cs_manager=True,
            )
            return None
        answer = self._answer
        assert answer is not None
        await self.record(
            "accounting_answered", actor=answer.resolved_by, detail=answer.audit_detail()
        )
        return answer

    async def accounting_silent(self) -> Outcome:
        """Step 4 (cont.): no answer before the gate's expiry - a person must settle it."""
        days = self.rules.approval.expire_after_days
        return await self.finish(
            CaseStatus.NEEDS_ATTENTION,
            reason=f"Accounting did not answer within {days} business days; "
            "Accounting and the CS manager were told",
        )

    async def settle(self, resolution: DisputeResolution) -> Outcome:
        """Step 5: 'Process authorized refunds or credits' (over REFUND_APPROVAL_ABOVE a
        manager first), then document it and tell the customer."""
        self._settled = resolution
        receipt: RefundReceipt | None = None
        if resolution.outcome.moves_money:
            paid = await self.pay_back(resolution)
            if isinstance(paid, Outcome):
                return paid
            receipt = paid
        await self.document(resolution, receipt)
        return await self.tell_customer(resolution, receipt)

    async def pay_back(self, resolution: DisputeResolution) -> RefundReceipt | Outcome:
        """A refund to the original payment or a store credit, through the shared refund
        mechanism; a manager's authorization first when it is over the threshold."""
        amount = resolution.amount
        assert amount is not None
        if policy.refund_needs_manager(amount, self.rules):
            approval = await self.gate.await_manager_decision(
                amount=amount,
                reason=f"billing dispute {resolution.outcome.value}: {resolution.explanation}",
                requested_by=resolution.resolved_by,
            )
            if approval.status is ApprovalStatus.EXPIRED:
                return await self.finish(
                    CaseStatus.EXPIRED,
                    reason="manager authorization was not given in time",
                    template="refund_expired",
                )
            if approval.status is ApprovalStatus.REJECTED:
                note = approval.note
                return await self.finish(
                    CaseStatus.REJECTED,
                    reason="not authorized by a manager" + (f": {note}" if note else ""),
                    template="refund_rejected",
                )
        # The outcome decides the method (a credit is store credit), not a customer's choice.
        credit = resolution.outcome is DisputeOutcome.CREDIT
        self.refund_method = RefundMethod.STORE_CREDIT if credit else RefundMethod.ORIGINAL_PAYMENT
        return await self.refund_money(amount, status=CaseStatus.REFUNDING)

    async def document(self, resolution: DisputeResolution, receipt: RefundReceipt | None) -> None:
        """Step 6: 'Document dispute resolution for future reference' - the order's note
        (kind dispute_resolution) and the audit line, in one transaction."""
        text = resolution.note(self._request.description, receipt)
        await self.record(
            "dispute_resolution_documented",
            actor=resolution.resolved_by,
            detail={
                **resolution.audit_detail(),
                **({"reference": receipt.reference} if receipt else {}),
            },
            status=CaseStatus.RESOLVING,
            step="Documenting the resolution",
        )
        await self.effect(
            CaseActivities.document_dispute_resolution,
            DisputeNote(
                case_id=self.case_id, order_id=self._order_id, text=text, at=workflow.now()
            ),
            summary="Note the resolution on the order",
        )

    async def tell_customer(
        self, resolution: DisputeResolution, receipt: RefundReceipt | None
    ) -> Outcome:
        """Step 7: the customer learns the outcome, the amount and why. ``resolved``."""
        outcome = resolution.outcome
        amount = receipt.amount if receipt else None
        if amount is None:
            words = "the charges stand"
        elif outcome is DisputeOutcome.CREDIT:
            words = f"credited {amount:.2f} as store credit"
        else:
            words = f"refunded {amount:.2f} to the original payment"
        timeline = policy.refund_timeline(self.refund_method) if receipt else None
        return await self.finish(
            CaseStatus.RESOLVED,
            reason=words,
            template="billing_resolved",
            context={
                "outcome": words,
                "explanation": resolution.explanation,
                "timeline": f"You will see it {timeline} (reference {receipt.reference}).\n"
                if receipt and timeline
                else "",
            },
            outcome=Outcome(
                status=CaseStatus.RESOLVED,
                reason=words,
                amount=amount,
                method=receipt.method if receipt else None,
                reference=receipt.reference if receipt else None,
                timeline=timeline,
            ),
        )

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.update(name="resolve_dispute")
    async def resolve_dispute(self, resolution: DisputeResolution) -> BillingDisputeState:
        """An agent settles the dispute: refund, credit or no change, with the explanation."""
        if self._resolution is None:
            self._resolution = resolution
        return self._state()

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
        return self._state()

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
        return self._state()

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

    # ---- what callers and emails see -------------------------------------------------------

    def _state(self) -> BillingDisputeState:
        state = self.state()
        assert isinstance(state, BillingDisputeState)
        return state

    def extra_state(self) -> dict[str, Any]:
        breakdown, settled, escalation = self._breakdown, self._settled, self._escalation
        return {
            **super().extra_state(),
            "description": self._request.description,
            "disputed_amount": self._request.disputed_amount,
            "invoice_total": breakdown.total if breakdown else None,
            "refunded_before": breakdown.refunded if breakdown else None,
            "refundable": breakdown.refundable if breakdown else None,
            "escalated": escalation is not None,
            "escalation_reason": escalation.reason if escalation else None,
            "accounting_due_at": self._accounting_due,
            "accounting_reminded": self._accounting_reminded,
            "accounting_escalated": self._accounting_escalated,
            "resolution": settled.outcome if settled else None,
            "resolution_amount": settled.amount if settled else None,
            "resolved_by": settled.resolved_by if settled else None,
            "explanation": settled.explanation if settled else None,
        }

    def notice_context(self) -> dict[str, str]:
        """The amount an email names: the resolution's once there is one, else the disputed."""
        context = super().notice_context()
        amount: Decimal | None = self._settled.amount if self._settled else None
        amount = amount if amount is not None else self._amount
        context["amount"] = f"{amount:.2f}" if amount is not None else "(not named)"
        context["description"] = self._request.description
        return context

    def _instant(self, instant: datetime) -> str:
        local = self.rules.calendar.local(instant)
        return f"{local:%A %B} {local.day}, {local:%H:%M %Z}"


def _refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise ApplicationError(refusal[1], type=refusal[0], non_retryable=True)
