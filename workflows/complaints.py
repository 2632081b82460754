"""ComplaintWorkflow: the SOP 'Quality Complaints' (docs/complaints.md).

Record, escalate by category before anything else, resolve at once (a replacement, or a
refund through the shared mechanism and, over the settlement threshold, the approval gate),
follow up within 24 hours, then confirm satisfaction (a supervisor when the customer is not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

from workflows.journal import ACTIVITY_TIMEOUT, DEFAULT_RETRY
from workflows.refunding import RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from activities.lots import LotActivities
    from workflows import policy, visibility
    from workflows.complaint_models import (
        ComplaintCategory,
        ComplaintRequest,
        ComplaintState,
        CustomerResponse,
        LotComplaint,
        QaFindings,
        ReplacementOrder,
        Resolution,
        SupervisorAction,
    )
    from workflows.models import (
        ApprovalStatus,
        ApproverLookup,
        CaseStatus,
        CaseType,
        Outcome,
        Recipient,
    )
    from workflows.sla_models import Clock, Owner, RunningClock

# Who investigates a complaint of each category (a key of the DEPARTMENTS setting).
INVESTIGATORS = {
    ComplaintCategory.QUALITY: "quality_assurance",
    ComplaintCategory.FOOD_SAFETY: "food_safety",
    ComplaintCategory.MEDICAL: "food_safety",
}
EMERGENCY_LINE = "emergency_line"


@workflow.defn
class ComplaintWorkflow(RefundingCase):
    """Record, escalate, resolve, follow up, confirm satisfaction."""

    case_type = CaseType.COMPLAINT
    state_model = ComplaintState

    @workflow.init
    def __init__(self, request: ComplaintRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=request.amount,
            requested_by=request.requested_by,
        )
        self._request = request
        self._replacement: str | None = None
        self._follow_up_at: datetime | None = None
        self._follow_up_clock: RunningClock | None = None
        self._callback_clock: RunningClock | None = None
        self._answer_clock: RunningClock | None = None
        self._answer_by: datetime | None = None
        self._findings: QaFindings | None = None
        self._response: CustomerResponse | None = None
        self._satisfied: bool | None = None
        self._action: SupervisorAction | None = None
        self._with_supervisor = False

    @workflow.run
    async def run(self, request: ComplaintRequest) -> Outcome:
        await self.open_case(request)
        self.promise_follow_up()
        await self.record_complaint(request)
        await self.escalate(request)
        await self.acknowledge()
        await self.watch_lot(request)
        ended = await self.resolve(request)
        if ended is not None:
            return ended
        await self.follow_up()
        while (response := await self.await_satisfaction()) is not None:
            if response.satisfied:
                return await self.finish(
                    CaseStatus.CLOSED,
                    reason="the customer is satisfied",
                    template="complaint_closed",
                )
            await self.escalate_to_supervisor(response)
            await self.follow_up_after(await self.await_supervisor())
        return await self.finish(
            CaseStatus.CLOSED_NO_RESPONSE,
            reason="the customer did not answer the follow-up",
            template="complaint_closed_no_response",
        )

    # ---- the steps -----------------------------------------------------------------------

    def promise_follow_up(self) -> None:
        """'Follow up within 24 hours': its clock runs from the opening, through the
        resolution (an approval may take longer), to the follow-up."""
        assert self._opening is not None
        self._follow_up_clock = self.sla.start(
            Clock.COMPLAINT_FOLLOW_UP,
            due=self._opening.opened_at + self.rules.complaint.follow_up_within,
            owner=self._requested_by,
            staff_ids=(self._requested_by,),
            started=self._opening.opened_at,
        )

    async def record_complaint(self, request: ComplaintRequest) -> None:
        """Step 1: 'Gather details; document with photos' (written with the next step)."""
        workflow.upsert_search_attributes([visibility.LOT.value_set(request.lot)])
        await self.record(
            "complaint_received",
            actor=request.requested_by,
            detail={
                "category": request.category.value,
                "sku": request.sku,
                "lot": request.lot,
                "requested_resolution": request.requested_resolution.value,
                "photos": " ".join(request.photos),
            },
        )

    async def escalate(self, request: ComplaintRequest) -> None:
        """Step 2: 'Escalate to QA' (food safety and medical urgently, out of hours 911 too)."""
        category = request.category
        urgent = category.is_emergency
        department = INVESTIGATORS[category]
        await self.notify(
            "complaint_escalated",
            Recipient.DEPARTMENT,
            department=department,
            # Medical: Food Safety and the CS manager at once, in the same email.
            copy_cs_manager=category is ComplaintCategory.MEDICAL,
            status=CaseStatus.ESCALATED,
            step=f"Escalated to {department.replace('_', ' ')}",
            event="complaint_escalated",
            detail={"department": department, "urgent": str(urgent).lower()},
            context={"urgency": "URGENT: " if urgent else ""},
        )
        if urgent and not self.rules.calendar.is_open(workflow.now()):
            await self.notify(
                "complaint_emergency_page",
                Recipient.DEPARTMENT,
                department=EMERGENCY_LINE,
                event="emergency_line_paged",
                detail={"department": EMERGENCY_LINE},
            )

    async def acknowledge(self) -> None:
        """Step 1 (cont.): the customer's acknowledgement, the CS manager copied."""
        await self.notify("complaint_received", Recipient.CUSTOMER, event="complaint_acknowledged")

    async def watch_lot(self, request: ComplaintRequest) -> None:
        """Emergency Procedures, recalls: the complaint counts towards its lot's watch."""
        assert self._opening is not None
        complaint = LotComplaint(
            lot=request.lot,
            sku=request.sku,
            case_id=self.case_id,
            category=request.category,
            at=self._opening.opened_at,
            threshold=self.rules.complaint.lot_alert_complaints,
            window=self.rules.complaint.lot_alert_window,
        )
        await workflow.execute_activity_method(
            LotActivities.report_to_lot_watch,
            complaint,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DEFAULT_RETRY,
            summary=f"Report to the watch of lot {request.lot}",
        )

    async def resolve(self, request: ComplaintRequest) -> Outcome | None:
        """Step 3: 'Offer an immediate resolution'; the case's ending when it cannot."""
        match request.requested_resolution:
            case Resolution.REPLACEMENT:
                await self.replace(request)
            case Resolution.REFUND:
                assert request.amount is not None  # the request model requires it
                return await self.settle(request)
            case Resolution.NONE:
                await self.record("no_resolution_requested")
        return None

    async def replace(self, request: ComplaintRequest) -> None:
        """A replacement order, placed once however often the step is retried."""
        await self.record("resolving", status=CaseStatus.RESOLVING, step=f"Replacing {request.sku}")
        order = ReplacementOrder(
            case_id=self.case_id,
            order_id=request.order_id,
            customer_id=request.customer_id,
            sku=request.sku,
            at=workflow.now(),
        )
        placed = await self.effect(
            CaseActivities.place_replacement, order, summary="Place the replacement order"
        )
        self._replacement = placed.order_id
        await self.notify(
            "complaint_replacement_confirmed",
            Recipient.CUSTOMER,
            event="replacement_placed",
            detail={"replacement_order_id": placed.order_id},
            context={"replacement_order_id": placed.order_id},
        )

    async def settle(self, request: ComplaintRequest) -> Outcome | None:
        """A refund by the shared mechanism; a manager first when over the threshold."""
        amount = request.amount
        assert amount is not None
        if policy.settlement_needs_manager(amount, self.rules):
            approval = await self.gate.await_manager_decision(
                amount=amount,
                reason=f"{request.category.value.replace('_', ' ')} complaint settlement",
                requested_by=request.requested_by,
            )
            if approval.status is not ApprovalStatus.APPROVED:
                why = "not authorized by a manager"
                if approval.status is ApprovalStatus.EXPIRED:
                    why = "manager authorization was not given in time"
                return await self.finish(
                    CaseStatus.REJECTED,
                    reason=f"settlement {why}",
                    template="complaint_settlement_refused",
                )
        receipt = await self.refund_money(amount, status=CaseStatus.RESOLVING)
        if isinstance(receipt, Outcome):
            return receipt
        method = self.refund_method
        await self.notify(
            "complaint_refund_confirmed",
            Recipient.CUSTOMER,
            event="refund_issued",
            detail={"reference": receipt.reference, "amount": f"{receipt.amount:.2f}"},
            context={
                "method": method.value.replace("_", " "),
                "timeline": policy.refund_timeline(method),
                "reference": receipt.reference,
            },
        )
        return None

    async def follow_up(self) -> None:
        """Step 4: 'Follow up within 24 hours' - at 24 hours sharp; QA reminded if silent."""
        assert self._opening is not None
        due = self._opening.opened_at + self.rules.complaint.follow_up_within
        self._follow_up_at = due
        in_time = workflow.now() < due  # else the resolution took longer: breached at due
        self.sla.ends_with_wait(self._follow_up_clock)  # the follow-up goes out at due
        await self.wait_until(due, "Follow up with the customer")
        if self.sla.enabled:
            await self.start_follow_up_clocks(met=in_time)
        # Emails go out at any hour, so the customer hears from us within the 24 hours;
        # the agent's task is due then, or at the next opening when we are closed.
        task_due = self.rules.calendar.next_open(workflow.now())
        await self.notify(
            "complaint_follow_up_task",
            Recipient.STAFF,
            staff_ids=(self._requested_by,),
            status=CaseStatus.FOLLOW_UP,
            step="Following up",
            event="follow_up_task",
            detail={"task_due": task_due.isoformat()},
            context={"task_due": _show(self.rules.calendar.local(task_due))},
        )
        if self._findings is None:
            await self.notify(
                "complaint_qa_reminder",
                Recipient.DEPARTMENT,
                department=INVESTIGATORS[self._request.category],
                event="qa_reminded",
            )
        await self.notify(
            "complaint_follow_up",
            Recipient.CUSTOMER,
            status=CaseStatus.AWAITING_CUSTOMER,
            step="Waiting for the customer's answer",
            event="follow_up_sent",
        )

    async def start_follow_up_clocks(self, *, met: bool) -> None:
        """The follow-up is due now: its clock stops, and the clocks of what it asks for
        start (Callbacks: the agent's call returned within CALLBACK hours; the customer's
        answer), their marks riding with the follow-up's emails."""
        await self.sla.stop(self._follow_up_clock, met=met)
        self._callback_clock = self.sla.start(
            Clock.CALLBACK,
            within=self.rules.sla.callback_within,
            owner=self._requested_by,
            staff_ids=(self._requested_by,),
        )
        days = self.rules.complaint.satisfaction_wait_days
        self._answer_by = self.rules.calendar.add_business_days(workflow.now(), days)
        self._answer_clock = self.sla.start(
            Clock.SATISFACTION_WAIT, due=self._answer_by, owner=Owner.CUSTOMER
        )

    async def await_satisfaction(self) -> CustomerResponse | None:
        """Step 5: 'Confirm satisfaction' - the answer, or None after SATISFACTION_WAIT."""
        calendar, days = self.rules.calendar, self.rules.complaint.satisfaction_wait_days
        deadline = self._answer_by or calendar.add_business_days(workflow.now(), days)
        clock = self._answer_clock or self.sla.start(
            Clock.SATISFACTION_WAIT, due=deadline, owner=Owner.CUSTOMER
        )
        self._answer_by, self._answer_clock = None, None
        answered = await self.wait_until(
            deadline, "The customer's answer", lambda: self._response is not None, clock=clock
        )
        # The customer's answer is what the agent's call brings back.
        await self.sla.stop(self._callback_clock, met=answered)
        if not answered:
            return None
        response, self._response = self._response, None
        assert response is not None
        self._satisfied = response.satisfied
        await self.record(
            "customer_satisfied" if response.satisfied else "customer_not_satisfied",
            actor=response.recorded_by,
            detail={"comment": response.comment, **relayed(response.on_behalf_of)},
        )
        return response

    async def escalate_to_supervisor(self, response: CustomerResponse) -> None:
        """Supervisor Escalation: brief a supervisor with the case and the documented reason."""
        directory = await self.call(
            CaseActivities.find_approvers,
            ApproverLookup(case_id=self.case_id, at=workflow.now()),
            summary="Find the supervisors",
        )
        supervisors = tuple(m.id for m in directory.staff if m.role == "supervisor")
        reason = response.comment or "the customer is not satisfied"
        self._with_supervisor = True
        await self.notify(
            "complaint_supervisor_briefing",
            Recipient.STAFF,
            staff_ids=supervisors,
            status=CaseStatus.ESCALATED,
            step="Escalated to a supervisor",
            event="supervisor_escalation",
            detail={"reason": reason},
            context={"reason": reason},
        )

    async def await_supervisor(self) -> SupervisorAction:
        """Supervisor Escalation: the supervisor acts (no deadline: a person owns it now)."""
        await self.wait_condition(lambda: self._action is not None)
        action, self._action = self._action, None
        assert action is not None
        self._with_supervisor = False
        await self.record(
            "supervisor_action",
            actor=action.taken_by,
            detail={"action": action.action, "note": action.note, **relayed(action.on_behalf_of)},
        )
        return action

    async def follow_up_after(self, action: SupervisorAction) -> None:
        """Follow-up Procedures: tell the customer what was done, and ask again."""
        await self.notify(
            "complaint_supervisor_follow_up",
            Recipient.CUSTOMER,
            status=CaseStatus.AWAITING_CUSTOMER,
            step="Waiting for the customer's answer",
            event="follow_up_sent",
            context={"action": action.action},
        )

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.signal(name="qa_findings")
    async def qa_findings(self, payload: dict[str, Any]) -> None:
        """QA's (or Food Safety's) findings; the latest ones stand."""
        findings = await self.parse_signal("qa_findings", QaFindings, payload)
        if findings is None:
            return
        self._findings = findings
        await self.record(
            "qa_findings",
            actor=findings.reported_by,
            detail={
                "root_cause": findings.root_cause,
                "lot_affected": str(findings.lot_affected).lower(),
                "action": findings.action,
                **relayed(findings.on_behalf_of),
            },
        )

    @workflow.signal(name="customer_response")
    async def customer_response(self, payload: dict[str, Any]) -> None:
        """The customer's answer; taken by the next satisfaction check."""
        response = await self.parse_signal("customer_response", CustomerResponse, payload)
        if response is None:
            return
        if self._with_supervisor:
            await self.record(
                "customer_response_ignored",
                actor=response.recorded_by,
                detail={"reason": "a supervisor is handling the case; they follow up first"},
            )
            return
        self._response = response

    @workflow.signal(name="supervisor_action")
    async def supervisor_action(self, payload: dict[str, Any]) -> None:
        """The supervisor's action on an escalated complaint."""
        action = await self.parse_signal("supervisor_action", SupervisorAction, payload)
        if action is None:
            return
        if not self._with_supervisor:
            await self.record(
                "supervisor_action_ignored",
                actor=action.taken_by,
                detail={"reason": "the case is not escalated to a supervisor"},
            )
            return
        self._action = action

    # ---- what callers and emails see -------------------------------------------------------

    def copies_cs_manager(self, recipient: Recipient) -> bool:
        """Email Communication: every customer email of a complaint copies the CS manager."""
        return recipient is Recipient.CUSTOMER

    def extra_state(self) -> dict[str, Any]:
        request = self._request
        return {
            **super().extra_state(),
            "category": request.category,
            "sku": request.sku,
            "lot": request.lot,
            "requested_resolution": request.requested_resolution,
            "replacement_order_id": self._replacement,
            "follow_up_at": self._follow_up_at,
            "qa_root_cause": self._findings.root_cause if self._findings else None,
            "satisfied": self._satisfied,
        }

    def notice_context(self) -> dict[str, str]:
        request = self._request
        return {
            **super().notice_context(),
            "category": request.category.value.replace("_", " "),
            "sku": request.sku,
            "lot": request.lot,
            "description": request.description,
            "photos": "\n".join(request.photos) or "(none)",
            "requested_resolution": request.requested_resolution.value,
        }


def _show(instant: datetime) -> str:
    return f"{instant:%A %B} {instant.day}, {instant:%H:%M %Z}"
