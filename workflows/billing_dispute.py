"""BillingDisputeWorkflow: the SOP 'Billing Disputes' (docs/billing-disputes.md).

Review the order's charges and email the invoice breakdown, then wait for an agent: a
refund or credit (over REFUND_APPROVAL_ABOVE through the gate) or no change, or an
escalation to Accounting (Department Transfers: ext. 203), whose silence follows the gate's
business-hour ladder. The resolution is documented on the order and the customer told.
What the case accepts while it runs, and its refusals: workflows/billing_dispute_messages.py.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow

from workflows.billing_dispute_messages import DisputeMessages

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
    from workflows.sla_models import Clock, RunningClock

# An agent's silence: reminded after this many business days, the CS manager after twice as
# many. No expiry: the agent who opened the dispute owns it until it is settled.
AGENT_REMIND_AFTER_DAYS = 1


@workflow.defn
class BillingDisputeWorkflow(DisputeMessages):
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

    # ---- what callers and emails see -------------------------------------------------------

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
