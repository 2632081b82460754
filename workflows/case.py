"""What every case has in common: opening, the state query, the approval messages, the
ending and what happens on a fault.

Procedures subclass ``CaseWorkflow`` and read like their SOP; the plumbing lives here once.
How each step is recorded (the audit trail, emails, activity calls) is ``CaseJournal``
(workflows/journal.py); what a fault means is workflows/faults.py.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
)

from workflows import metrics
from workflows.approval import VERIFIED_DECISIONS, ApprovalGate
from workflows.faults import describe_fault, ends_the_case
from workflows.journal import CaseJournal

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py); workflow
# logic is imported normally, so that the sandbox checks it.
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows.models import (
        ApprovalKind,
        ApprovalState,
        ApprovalStatus,
        Audited,
        CaseOpening,
        CaseRules,
        CaseState,
        CaseStatus,
        CaseType,
        Decision,
        Escalation,
        Outcome,
        Recipient,
    )

A = TypeVar("A")
R = TypeVar("R")
C = TypeVar("C", bound=Audited)
M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=CaseState)

# Writing down that a case needs attention is the last thing it does: retry everything, for as
# long as it takes (a database outage), never give up and leave the case silently stale.
ATTENTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)


def _ends_in_needs_attention(
    run: Callable[..., Awaitable[Outcome]],
) -> Callable[..., Awaitable[Outcome]]:
    @functools.wraps(run)  # keeps @workflow.run's mark, name and type hints
    async def guarded(self: CaseWorkflow, *args: Any) -> Outcome:
        try:
            return await run(self, *args)
        except Exception as error:
            if not ends_the_case(error):
                raise
            return await self.needs_attention(error)

    return guarded


class CaseWorkflow(CaseJournal):
    """Base of every procedure. Subclasses set ``case_type`` and define ``run``."""

    case_type: ClassVar[CaseType]
    # What the ``state`` query answers; a procedure with fields of its own subclasses it.
    state_model: ClassVar[type[CaseState]] = CaseState

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Temporal requires @workflow.run on the registered class itself, so the base cannot
        # own ``run``; instead every procedure's ``run`` is wrapped here, once, so that a
        # fault anywhere ends the case needs_attention (see ``ends_the_case``).
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None:
            cls.run = _ends_in_needs_attention(run)  # type: ignore[attr-defined]

    def __init__(
        self,
        *,
        order_id: str,
        customer_id: str,
        amount: Decimal | None,
        requested_by: str,
    ) -> None:
        super().__init__(workflow.info().workflow_id)
        self._order_id = order_id
        self._customer_id = customer_id
        self._amount = amount
        self._requested_by = requested_by
        self._outcome: Outcome | None = None
        self._seen_events: set[str] = set()
        self._rules: CaseRules | None = None
        self._opening: CaseOpening | None = None
        self.gate = ApprovalGate(self)

    @property
    def rules(self) -> CaseRules:
        if self._rules is None:
            raise ApplicationError("case rules read before the case was opened")
        return self._rules

    # ---- queries ------------------------------------------------------------------------

    def state_as(self, model: type[S]) -> S:
        """The case as a caller sees it, typed as the procedure's own state model (what its
        updates answer)."""
        state = self.state()
        assert isinstance(state, model)
        return state

    @workflow.query(name="state")
    def state(self) -> CaseState:
        """The case as a caller sees it: status, step, approval, outcome and timeline."""
        return self.state_model(
            case_id=self.case_id,
            type=self.case_type,
            status=self._status,
            step=self._step,
            order_id=self._order_id,
            customer_id=self._customer_id,
            amount=self._amount,
            requested_by=self._requested_by,
            approval=self.gate.state,
            outcome=self._outcome,
            timeline=tuple(self._timeline),
            **self.extra_state(),
        )

    def extra_state(self) -> dict[str, Any]:
        """The fields ``state_model`` adds to ``CaseState``."""
        return {}

    # ---- approval messages (the gate holds the rules) -------------------------------------

    @workflow.update(name="decide")
    async def decide(self, decision: Decision) -> ApprovalState:
        """A manager approves or rejects; the answer is the approval as it now stands."""
        return await self._decide(decision, by_code=False)

    @workflow.update(name="decide_with_code")
    async def decide_with_code(self, decision: Decision) -> ApprovalState:
        """The same decision sent from the approval email's link: the page that sends it
        authenticates nobody, so the approver's decision code is its proof, checked and spent
        as a signal's is. A handler of its own, so that a worker that does not know it refuses
        the update instead of deciding without the code."""
        return await self._decide(decision, by_code=True)

    async def _decide(self, decision: Decision, *, by_code: bool) -> ApprovalState:
        if self.gate.is_repeat(decision):
            assert self.gate.state is not None
            return self.gate.state
        refusal = None
        if by_code or workflow.patched(VERIFIED_DECISIONS):
            # The validator judged the snapshot; the directory as of now has the last word.
            refusal = await self.gate.confirm(decision, by_signal=by_code)
        if not self.gate.is_repeat(decision):  # else the same decision applied meanwhile
            # Another decision (or the expiry) may have landed while the directory was asked.
            refusal = refusal or self.gate.refusal(decision)
            if refusal:
                raise ApplicationError(refusal.message, type=refusal.kind, non_retryable=True)
            self.gate.apply(decision, workflow.now())
        assert self.gate.state is not None
        return self.gate.state

    @decide.validator
    def _validate_decide(self, decision: Decision) -> None:
        if self.gate.is_repeat(decision):
            return
        # Refused before anything is written to history, so the case keeps waiting untouched.
        refusal = self.gate.refusal(decision)
        if refusal:
            raise ApplicationError(refusal.message, type=refusal.kind, non_retryable=True)

    @decide_with_code.validator
    def _validate_decide_with_code(self, decision: Decision) -> None:
        if not decision.code:
            raise ApplicationError(
                "a decision from a link needs the approver's decision code",
                type="NotAuthorized",
                non_retryable=True,
            )
        self._validate_decide(decision)

    @workflow.signal(name="decision")
    async def decision_signal(self, payload: dict[str, Any]) -> None:
        """The same decision, fire-and-forget (Temporal UI). It proves its sender with the
        approver's decision code; bad ones are recorded, ignored, and the case keeps waiting."""
        decision = await self.parse_signal("decision", Decision, payload)
        if decision is None or self.gate.is_repeat(decision):
            return
        if decision.event_id is None:
            # Without an id a redelivered signal could not be told apart from a new decision.
            await self.record(
                "decision_ignored",
                actor=decision.approver_id,
                detail={"reason": "a decision signal needs an event_id"},
            )
            return
        refusal = self.gate.refusal(decision)
        if refusal is None and workflow.patched(VERIFIED_DECISIONS):
            refusal = await self.gate.confirm(decision, by_signal=True)
            # Another decision (or the expiry) may have landed while the code was checked.
            refusal = refusal or self.gate.refusal(decision)
        if refusal:
            await self.record(
                "decision_ignored",
                actor=decision.approver_id,
                detail={"reason": refusal.message, "decision": decision.decision.value},
            )
            return
        self.gate.apply(decision, workflow.now())

    async def parse_signal(self, name: str, model: type[M], payload: Any) -> M | None:
        """Validate a signal's payload; a malformed or repeated one is recorded and dropped."""
        try:
            message = model.model_validate(payload)
        except ValidationError as err:
            errors = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                for e in err.errors()
            )
            await self.record(f"{name}_ignored", detail={"reason": f"invalid: {errors}"})
            return None
        event_id = getattr(message, "event_id", None)
        if event_id is not None:
            if event_id in self._seen_events:
                workflow.logger.info("duplicate %s signal dropped", name, extra={"event": event_id})
                return None
            self._seen_events.add(event_id)
        return message

    # ---- steps shared by every procedure (recording them: CaseJournal) --------------------

    async def open_case(self, request: BaseModel) -> CaseRules:
        """Record the case and the rules in force now; they hold for its whole life."""
        lean = self.lean  # decided here, before the case's first command
        self._main = asyncio.current_task()
        metrics.case_opened(self.case_type.value)
        opening = CaseOpening(
            case_id=self.case_id,
            case_type=self.case_type,
            order_id=self._order_id,
            customer_id=self._customer_id,
            amount=self._amount,
            requested_by=self._requested_by,
            request=request.model_dump(mode="json"),
            opened_at=workflow.now(),
        )
        self._opening = opening
        if not lean:
            self._rules = await self.call(
                CaseActivities.open_case, opening, summary="Open the case"
            )
            await self.record("case_opened", actor=self._requested_by, step="Opened")
            return self._rules
        # The case row and its first line, in one transaction.
        before = self._status, self._step
        entry = self._entry("case_opened", self._requested_by, None, None, "Opened", None)
        line = self._timeline[-1]
        self._pending.append(entry)
        try:
            self._rules = await self.effect(
                CaseActivities.open_case, opening, summary="Open the case"
            )
        except BaseException:
            self._pending = [kept for kept in self._pending if kept is not entry]
            self._unwritten(entry, line, before)
            raise
        # Its waits run under SLA clocks on the calendar it opened with (workflows/sla.py).
        self.sla.enable(procedure=self.case_type.value, calendar=self._rules.calendar)
        return self._rules

    def notice_context(self) -> dict[str, str]:
        """Facts every email template may use."""
        return {
            "case_id": self.case_id,
            "case_type": self.case_type.value.replace("_", " "),
            "order_id": self._order_id,
            "amount": f"{self._amount:.2f}" if self._amount is not None else "",
            "currency": self.rules.currency if self._rules else "USD",
        }

    async def finish(
        self,
        status: CaseStatus,
        *,
        reason: str = "",
        template: str | None = None,
        context: dict[str, str] | None = None,
        outcome: Outcome | None = None,
    ) -> Outcome:
        """End the case: tell the customer (when there is a template) and return the outcome."""
        step = f"Closed: {reason}" if reason else "Closed"
        event, detail = f"case_{status.value}", {"reason": reason}
        await self.sla.stop_all()  # their stops ride with the closing line
        self._waits += 1  # the case ends: nothing is held back from here on
        if template:
            await self.notify(
                template,
                Recipient.CUSTOMER,
                context={"reason": reason, **(context or {})},
                status=status,
                step=step,
                event=event,
                detail=detail,
            )
        else:
            await self.record(event, detail=detail, status=status, step=step)
        self._outcome = outcome or Outcome(status=status, reason=reason)
        # Let any in-flight signal or update handler finish before the case closes.
        await self.wait_condition(workflow.all_handlers_finished)
        metrics.case_closed(self.case_type.value, self._outcome.status.value)
        return self._outcome

    async def exception_granted(
        self, rule: str, amount: Decimal, why: str, requested_by: str
    ) -> bool:
        """SOP 'Manager Authorization Required: Policy exceptions', through the gate: the
        exception names the written ``rule`` (a setting's name: RETURN_WINDOW...), the reason
        and the amount; the approval row and the audit trail keep all three."""
        approval = await self.gate.await_manager_decision(
            amount=amount,
            reason=f"policy exception: {why}",
            requested_by=requested_by,
            kind=ApprovalKind.POLICY_EXCEPTION,
            rule=rule,
        )
        return approval.status is ApprovalStatus.APPROVED

    # ---- when something breaks ------------------------------------------------------------

    async def needs_attention(self, error: Exception) -> Outcome:
        """End the case on a fault: the database, the audit trail and the people who must act."""
        reason, detail, department = describe_fault(error)
        workflow.logger.warning("case stopped on a fault: %s", reason)
        failed_step = self._step
        self.sla.stop_all_now()  # their stops ride with this line
        entry = self._entry(
            "case_needs_attention",
            "system",
            {"reason": reason, "failed_step": failed_step, **detail},
            CaseStatus.NEEDS_ATTENTION,
            f"Needs attention: {reason}"[:200],  # the step column holds 200 characters
            None,
        )
        self._waits += 1  # the case ends: nothing is held back from here on
        earlier = self._take_pending()
        escalation = Escalation(
            audit=earlier,
            entry=entry,
            department=department,
            context={**self.notice_context(), "reason": reason, "failed_step": failed_step},
            opening=self._opening,
        )
        try:
            await self.call(
                CaseActivities.record_needs_attention,
                escalation,
                retry=ATTENTION_RETRY,
                summary="Needs attention: tell the CS manager",
            )
        except BaseException:
            self._restore(earlier)
            raise
        self._outcome = Outcome(status=CaseStatus.NEEDS_ATTENTION, reason=reason)
        await self.wait_condition(workflow.all_handlers_finished)
        metrics.case_closed(self.case_type.value, CaseStatus.NEEDS_ATTENTION.value)
        return self._outcome
