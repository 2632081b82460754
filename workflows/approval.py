"""The one approval gate every procedure uses (SOP: Manager Authorization Required).

The gate asks the eligible approvers, then waits for a decision that arrives as an update
(the caller gets an answer) or a signal (the Temporal UI, fire-and-forget). Business-hour
timers remind the approvers, escalate to the customer-service manager, and finally expire
the request. Everything the validators need is held here, since they may not do I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, TypeVar

from temporalio import workflow

from workflows import metrics
from workflows.sla import SlaClocks

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy
    from workflows.models import (
        ApprovalKind,
        ApprovalState,
        ApprovalStatus,
        ApproverDirectory,
        ApproverLookup,
        CaseRules,
        CaseStatus,
        CaseType,
        Decision,
        DecisionCheck,
        DecisionKind,
        Recipient,
        Refusal,
    )
    from workflows.sla_models import Clock, Owner

# Decisions are confirmed by the `verify_decision` activity before they apply (the directory
# as of the decision's instant; a signal's decision code). Cases that decided before this
# took the old path, and replay it.
VERIFIED_DECISIONS = "verified-decisions"

A = TypeVar("A")
R = TypeVar("R")


class GatedCase(Protocol):
    """What the gate needs of the case it guards: its id and rules, its activities, its audit
    trail and its emails. Every procedure's case provides them (``CaseWorkflow``); the gate
    depends on this much only, so that it can be read, and changed, on its own."""

    @property
    def case_id(self) -> str: ...

    @property
    def rules(self) -> CaseRules: ...

    @property
    def case_type(self) -> CaseType:
        """The procedure, for the gate's metrics."""
        ...

    @property
    def sla(self) -> SlaClocks:
        """The case's SLA clocks: the request's escalation and expiry run on them."""
        ...

    async def call(self, activity: Callable[[CaseActivities, A], R], arg: A, *, summary: str) -> R:
        """Run an activity of the case (its retry policy and timeouts) and return its result."""
        ...

    async def wait_condition(
        self,
        condition: Callable[[], bool],
        *,
        timeout: timedelta | None = ...,  # noqa: ASYNC109 - a Temporal timer
        timeout_summary: str | None = ...,
    ) -> None:
        """Wait durably (its audit lines written first); TimeoutError when ``timeout`` ends."""
        ...

    async def record(
        self,
        event: str,
        *,
        actor: str = ...,
        detail: dict[str, str] | None = ...,
        approval: ApprovalState | None = ...,
    ) -> None:
        """Add a line to the case's audit trail."""
        ...

    async def notify(
        self,
        template: str,
        recipient: Recipient,
        *,
        staff_ids: tuple[str, ...] = ...,
        context: dict[str, str] | None = ...,
        status: CaseStatus | None = ...,
        step: str | None = ...,
        approval: ApprovalState | None = ...,
    ) -> None:
        """Queue an email from ``template`` with its audit line (moving the case on)."""
        ...


class ApprovalGate:
    def __init__(self, case: GatedCase) -> None:
        self._case = case
        self._directory = ApproverDirectory(staff=())
        self._applied_event_ids: set[str] = set()
        self.state: ApprovalState | None = None

    # ---- deciding (used by the update validator, the update and the signal) ----------

    def refusal(self, decision: Decision) -> Refusal | None:
        state = self.state
        if state is None or state.status is not ApprovalStatus.PENDING:
            why = "no approval was requested" if state is None else f"already {state.status}"
            return Refusal("NoDecisionPending", f"no decision is pending on this case ({why})")
        reason = policy.approver_refusal(
            self._directory,
            decision.approver_id,
            amount=state.amount,
            requested_by=state.requested_by,
            rules=self._case.rules,
        )
        return Refusal("NotAuthorized", reason) if reason else None

    async def confirm(self, decision: Decision, *, by_signal: bool) -> Refusal | None:
        """Ask the directory (and, for a signal, the code store) whether the decision may
        apply as of now; the approver list held here is only a snapshot."""
        assert self.state is not None
        check = DecisionCheck(
            case_id=self._case.case_id,
            approver_id=decision.approver_id,
            event_id=decision.event_id,
            code=decision.code,
            by_signal=by_signal,
            at=workflow.now(),
            approval=self.state,
            rules=self._case.rules,
        )
        verdict = await self._case.call(
            CaseActivities.verify_decision,
            check,
            summary=f"Verify the decision of {decision.approver_id}",
        )
        # The request may have been decided or expired while the check ran.
        pending = self.refusal(decision)
        if verdict.refusal:
            return Refusal(verdict.kind, verdict.refusal)
        return pending

    def is_repeat(self, decision: Decision) -> bool:
        """The same decision delivered again (a retried call): answer it, act once."""
        return decision.event_id is not None and decision.event_id in self._applied_event_ids

    def apply(self, decision: Decision, at: datetime) -> ApprovalState:
        assert self.state is not None
        if decision.event_id:
            self._applied_event_ids.add(decision.event_id)
        approved = decision.decision is DecisionKind.APPROVE
        self.state = self.state.model_copy(
            update={
                "status": ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED,
                "decided_by": decision.approver_id,
                "decided_at": at,
                "note": decision.note,
            }
        )
        return self.state

    # ---- waiting -------------------------------------------------------------------------

    async def await_manager_decision(
        self,
        *,
        amount: Decimal,
        reason: str,
        requested_by: str,
        kind: ApprovalKind = ApprovalKind.AUTHORIZATION,
        rule: str | None = None,
    ) -> ApprovalState:
        """Ask for authorization (or an exception to ``rule``: ``kind``), then remind,
        escalate and expire on business-hour timers."""
        case = self._case
        requested_at = workflow.now()
        remind_at, escalate_at, due_at = policy.approval_deadlines(case.rules, requested_at)
        self.state = ApprovalState(
            status=ApprovalStatus.PENDING,
            amount=amount,
            reason=reason,
            requested_by=requested_by,
            requested_at=requested_at,
            remind_at=remind_at,
            escalate_at=escalate_at,
            due_at=due_at,
            eligible_approvers=(),
            kind=kind,
            rule=rule,
        )
        await self._refresh_approvers()
        # Started before the request's email, so that their rows are written with it.
        escalation = case.sla.start(
            Clock.APPROVAL_ESCALATION,
            due=escalate_at,
            owner=Owner.APPROVERS,
            staff_ids=self.state.eligible_approvers,
            started=requested_at,
            ends_at_due=True,
        )
        expiry = case.sla.start(
            Clock.APPROVAL_EXPIRY,
            due=due_at,
            owner=Owner.CS_MANAGER,
            started=requested_at,
            ends_at_due=True,
        )
        await case.notify(
            "approval_requested",
            Recipient.APPROVERS,
            staff_ids=self.state.eligible_approvers,
            status=CaseStatus.AWAITING_APPROVAL,
            step="Awaiting manager approval",
            approval=self.state,
            context={"reason": reason, "due_at": _show(due_at)},
        )
        if not self.state.eligible_approvers:
            await self._escalate("nobody is eligible to approve this amount")

        if not await self._decided_by(remind_at, "Remind approvers"):
            await self._remind()
        decided = await self._decided_by(escalate_at, "Escalate to the CS manager")
        await case.sla.stop(escalation, met=decided)
        if not decided:
            await self._escalate("no decision within the escalation time")
        decided = await self._decided_by(due_at, "Approval request expires")
        await case.sla.stop(expiry, met=decided)
        if not decided:
            self.state = self.state.model_copy(update={"status": ApprovalStatus.EXPIRED})
            await case.record("approval_expired", approval=self.state)
            return self.state

        decided_at = self.state.decided_at or workflow.now()
        metrics.decision_taken(
            case.case_type.value, self.state.status.value, decided_at - requested_at
        )
        await case.record(
            f"approval_{self.state.status}",
            actor=self.state.decided_by or "unknown",
            detail={"note": self.state.note},
            approval=self.state,
        )
        return self.state

    async def _decided_by(self, deadline: datetime, what: str) -> bool:
        """Wait until a decision or ``deadline``; True when decided."""
        assert self.state is not None
        remaining = deadline - workflow.now()
        if self.state.status is ApprovalStatus.PENDING and remaining.total_seconds() > 0:
            with contextlib.suppress(TimeoutError):  # the deadline passed undecided
                await self._case.wait_condition(
                    lambda: (
                        self.state is not None and self.state.status is not ApprovalStatus.PENDING
                    ),
                    timeout=remaining,
                    timeout_summary=what,
                )
        return self.state.status is not ApprovalStatus.PENDING

    async def _refresh_approvers(self) -> None:
        """Who may decide, as of now: delegations start and end while a case waits."""
        assert self.state is not None
        self._directory = await self._case.call(
            CaseActivities.find_approvers,
            ApproverLookup(case_id=self._case.case_id, at=workflow.now()),
            summary="Look up eligible approvers",
        )
        eligible = policy.eligible_approvers(
            self._directory,
            amount=self.state.amount,
            requested_by=self.state.requested_by,
            rules=self._case.rules,
        )
        self.state = self.state.model_copy(update={"eligible_approvers": eligible})

    async def _remind(self) -> None:
        await self._refresh_approvers()
        assert self.state is not None
        self.state = self.state.model_copy(update={"reminded": True})
        await self._case.notify(
            "approval_reminder",
            Recipient.APPROVERS,
            staff_ids=self.state.eligible_approvers,
            approval=self.state,
            context={"due_at": _show(self.state.due_at)},
        )

    async def _escalate(self, why: str) -> None:
        assert self.state is not None
        if self.state.escalated:
            return
        self.state = self.state.model_copy(update={"escalated": True})
        await self._case.notify(
            "approval_escalated",
            Recipient.CS_MANAGER,
            approval=self.state,
            context={"why": why, "due_at": _show(self.state.due_at)},
        )


def _show(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M UTC")
