"""What every case has in common: its state, audit trail, notices and the approval messages.

Procedures subclass ``CaseWorkflow`` and read like their SOP; the plumbing lives here once.
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
    ActivityError,
    ApplicationError,
    FailureError,
    RetryState,
    TemporalError,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout

from workflows.approval import VERIFIED_DECISIONS, ApprovalGate

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py); workflow
# logic is imported normally, so that the sandbox checks it.
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import visibility
    from workflows.models import (
        ApprovalState,
        Audited,
        AuditEntry,
        AuditLines,
        CaseOpening,
        CaseRules,
        CaseState,
        CaseStatus,
        CaseType,
        Decision,
        Escalation,
        Notice,
        Outcome,
        Recipient,
        TimelineEntry,
    )

A = TypeVar("A")
R = TypeVar("R")
C = TypeVar("C", bound=Audited)
M = TypeVar("M", bound=BaseModel)

# A case's audit lines ride with the work they record: written in the transaction of the
# next activity that has an effect, or by one activity before the case waits or ends,
# instead of one activity per line. Cases opened before replay the line-per-activity path.
LEAN_BOOKKEEPING = "lean-bookkeeping"

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Database and mail hiccups heal themselves; keep retrying, slowly, rather than lose a case.
DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["InvalidRequest"],
)
# Writing down that a case needs attention is the last thing it does: retry everything, for as
# long as it takes (a database outage), never give up and leave the case silently stale.
ATTENTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
# Who is told, besides the CS manager, when a case stops on a fault: the department that owns
# the failing step (activity), and IT for faults in our own code or templates.
PROGRAMMING_FAULTS = "it_support"
STEP_OWNERS: dict[str, str] = {
    "issue_refund": "accounting",
    "reserve_refund": "accounting",
    "release_refund": "accounting",
}


def ends_the_case(error: Exception) -> bool:
    """Whether ``error``, escaping a procedure's ``run``, ends the case ``needs_attention``.

    Yes for every failure Temporal reports (an activity failing for good or out of retries, a
    timeout, an ApplicationError) and for every bug in workflow code (KeyError, TypeError...).
    Temporal's default for such a bug is to fail the workflow *task* and retry it forever,
    waiting for a fixed deploy: the case would sit at "refunding" with nobody told. A person
    can settle a case marked needs_attention; nobody sees a task retrying.

    No for Temporal's own errors saying this code cannot run this history (non-determinism,
    sandbox restrictions): recording anything then would issue commands the history does not
    have. Those keep failing the task, so that a fixed (or rolled back) deploy resumes the case
    where it was. Cancellation, continue-as-new and eviction are BaseExceptions and pass by.
    """
    return isinstance(error, FailureError) or not isinstance(error, TemporalError)


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


class CaseWorkflow:
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
        self.case_id = workflow.info().workflow_id
        self._status = CaseStatus.RECEIVED
        self._step = "Received"
        self._order_id = order_id
        self._customer_id = customer_id
        self._amount = amount
        self._requested_by = requested_by
        self._timeline: list[TimelineEntry] = []
        self._outcome: Outcome | None = None
        self._seq = 0
        self._seen_events: set[str] = set()
        self._rules: CaseRules | None = None
        self._opening: CaseOpening | None = None
        self._lean: bool | None = None
        # Lines recorded, in the timeline, not yet handed to an activity to write.
        self._pending: list[AuditEntry] = []
        # Durable waits (and the closing wait) in progress: lines are written at once then.
        self._waits = 0
        # The task running the procedure's steps; message handlers run in tasks of their own.
        self._main: asyncio.Task[Any] | None = None
        self.gate = ApprovalGate(self)

    @property
    def lean(self) -> bool:
        """Whether this case batches its audit lines; asked once (as it opens), remembered."""
        if self._lean is None:
            self._lean = workflow.patched(LEAN_BOOKKEEPING)
        return self._lean

    @property
    def rules(self) -> CaseRules:
        if self._rules is None:
            raise ApplicationError("case rules read before the case was opened")
        return self._rules

    # ---- queries ------------------------------------------------------------------------

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
        if self.gate.is_repeat(decision):
            assert self.gate.state is not None
            return self.gate.state
        refusal = None
        if workflow.patched(VERIFIED_DECISIONS):
            # The validator judged the snapshot; the directory as of now has the last word.
            refusal = await self.gate.confirm(decision, by_signal=False)
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

    # ---- steps shared by every procedure -------------------------------------------------

    async def call(
        self,
        activity: Callable[[CaseActivities, A], R],
        arg: A,
        *,
        summary: str,
        retry: RetryPolicy = DEFAULT_RETRY,
        schedule_to_close: timedelta | None = None,
    ) -> R:
        """Run one of the case's activities, by reference: argument and result type-checked."""
        return await workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            schedule_to_close_timeout=schedule_to_close,
            retry_policy=retry,
            summary=summary,
        )

    async def effect(
        self,
        activity: Callable[[CaseActivities, C], R],
        arg: C,
        *,
        summary: str,
        retry: RetryPolicy = DEFAULT_RETRY,
        schedule_to_close: timedelta | None = None,
    ) -> R:
        """Run an activity that has an effect, the pending audit lines riding with it: it
        writes them in the transaction of its effect. Should it fail, they stay pending
        (they happened all the same) for the next activity to write."""
        lines = self._take_pending()
        try:
            return await self.call(
                activity,
                arg.model_copy(update={"audit": arg.audit + lines}) if lines else arg,
                summary=summary,
                retry=retry,
                schedule_to_close=schedule_to_close,
            )
        except BaseException:
            self._restore(lines)
            raise

    async def open_case(self, request: BaseModel) -> CaseRules:
        """Record the case and the rules in force now; they hold for its whole life."""
        lean = self.lean  # decided here, before the case's first command
        self._main = asyncio.current_task()
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
        return self._rules

    def _entry(
        self,
        event: str,
        actor: str,
        detail: dict[str, str] | None,
        status: CaseStatus | None,
        step: str | None,
        approval: ApprovalState | None,
    ) -> AuditEntry:
        if status is not None and status is not self._status:
            self._status = status
            workflow.upsert_search_attributes([visibility.CASE_STATUS.value_set(status.value)])
        if step is not None:
            self._step = step
            workflow.set_current_details(f"**{self._status.value}**: {step}")
        self._seq += 1
        at = workflow.now()
        detail = detail or {}
        self._timeline.append(TimelineEntry(at=at, event=event, actor=actor, detail=detail))
        return AuditEntry(
            case_id=self.case_id,
            seq=self._seq,
            at=at,
            event=event,
            actor=actor,
            detail=detail,
            status=status,
            step=step,
            approval=approval,
        )

    async def record(
        self,
        event: str,
        *,
        actor: str = "system",
        detail: dict[str, str] | None = None,
        status: CaseStatus | None = None,
        step: str | None = None,
        approval: ApprovalState | None = None,
    ) -> None:
        """Add a line to the audit trail (and move the case to ``status``/``step``).

        A lean case holds a line of its steps until its next activity with an effect, or
        until it waits or ends, whichever comes first. A line recorded while it waits, or by
        a message handler (the steps may be inside a payment retrying for an hour), is
        written at once, with any held before it.
        """
        before = self._status, self._step
        entry = self._entry(event, actor, detail, status, step, approval)
        line = self._timeline[-1]
        if not self.lean:
            try:
                await self.call(CaseActivities.record_event, entry, summary=f"Audit: {event}")
            except BaseException:
                self._unwritten(entry, line, before)
                raise
            return
        if not self._waits and asyncio.current_task() is self._main:
            self._pending.append(entry)
            return
        earlier = self._take_pending()
        try:
            await self._write_lines((*earlier, entry), summary=f"Audit: {event}")
        except BaseException:
            self._restore(earlier)
            self._unwritten(entry, line, before)
            raise

    async def flush(self) -> None:
        """Write every pending line now (one activity), before the case waits or ends."""
        while self._pending:
            lines = self._take_pending()
            try:
                await self._write_lines(lines, summary=f"Audit: {lines[-1].event}")
            except BaseException:
                self._restore(lines)
                raise

    async def _write_lines(self, lines: tuple[AuditEntry, ...], *, summary: str) -> None:
        await self.call(CaseActivities.record_lines, AuditLines(lines=lines), summary=summary)

    def _take_pending(self) -> tuple[AuditEntry, ...]:
        lines, self._pending = tuple(self._pending), []
        return lines

    def _restore(self, lines: tuple[AuditEntry, ...]) -> None:
        """Lines whose carrier failed: pending again, in their order, for the next write."""
        if lines:
            self._pending = sorted([*lines, *self._pending], key=lambda entry: entry.seq)

    async def wait_condition(
        self,
        condition: Callable[[], bool],
        *,
        timeout: timedelta | None = None,  # noqa: ASYNC109 - a Temporal timer, as in the SDK's
        timeout_summary: str | None = None,
    ) -> None:
        """``workflow.wait_condition`` for a durable wait (a person, a package, a deadline):
        every pending line is written first, and lines recorded while it waits are written
        at once, so the database never lags a sleeping case. TimeoutError as the original."""
        self._waits += 1
        try:
            await self.flush()
            await workflow.wait_condition(
                condition, timeout=timeout, timeout_summary=timeout_summary
            )
        finally:
            self._waits -= 1

    async def notify(
        self,
        template: str,
        recipient: Recipient,
        *,
        staff_ids: tuple[str, ...] = (),
        department: str | None = None,
        context: dict[str, str] | None = None,
        status: CaseStatus | None = None,
        step: str | None = None,
        approval: ApprovalState | None = None,
        event: str | None = None,
        detail: dict[str, str] | None = None,
        copy_cs_manager: bool | None = None,
    ) -> None:
        """Queue an email from ``template``, with its audit line, in one transaction.
        ``copy_cs_manager`` defaults to the procedure's rule (``copies_cs_manager``)."""
        detail = {**(detail or {}), "email": template, "to": recipient.value}
        earlier = self._take_pending()  # written first, in the email's transaction
        before = self._status, self._step
        entry = self._entry(event or f"email_{template}", "system", detail, status, step, approval)
        line = self._timeline[-1]
        notice = Notice(
            audit=earlier,
            entry=entry,
            template=template,
            recipient=recipient,
            staff_ids=staff_ids,
            department=department,
            context={**self.notice_context(), **(context or {})},
            copy_cs_manager=(
                self.copies_cs_manager(recipient) if copy_cs_manager is None else copy_cs_manager
            ),
        )
        try:
            await self.call(CaseActivities.send_notice, notice, summary=f"Email: {template}")
        except BaseException:
            self._restore(earlier)
            self._unwritten(entry, line, before)
            raise

    def _unwritten(
        self, entry: AuditEntry, line: TimelineEntry, before: tuple[CaseStatus, str]
    ) -> None:
        """A line whose write failed never happened: the case stands where it stood."""
        self._timeline = [kept for kept in self._timeline if kept is not line]
        if entry.status is not None and self._status is entry.status:
            self._status = before[0]
        if entry.step is not None and self._step == entry.step:
            self._step = before[1]

    def copies_cs_manager(self, recipient: Recipient) -> bool:
        """Whether an email to ``recipient`` goes to the CS manager too (complaints: the
        customer's emails, by the Email Communication SOP)."""
        return False

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
        return self._outcome

    # ---- when something breaks ------------------------------------------------------------

    async def needs_attention(self, error: Exception) -> Outcome:
        """End the case on a fault: the database, the audit trail and the people who must act."""
        reason, detail, department = self.describe_fault(error)
        workflow.logger.warning("case stopped on a fault: %s", reason)
        failed_step = self._step
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
        return self._outcome

    def describe_fault(self, error: Exception) -> tuple[str, dict[str, str], str | None]:
        """Why the case stopped, in words; facts for the audit line; the department to tell."""
        if isinstance(error, ActivityError):
            activity, cause = error.activity_type or "an activity", error.cause
            if isinstance(cause, ApplicationError):
                kind, message = cause.type or "ApplicationError", cause.message
            elif isinstance(cause, ActivityTimeout):
                kind = "Timeout"
                message = f"timed out ({cause.type.name.lower() if cause.type else 'timeout'})"
            else:
                kind, message = type(cause).__name__, str(cause or error)
            how = ""
            if error.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED:
                how = " after its retries ran out"
            elif error.retry_state is RetryState.TIMEOUT:
                how = " after retrying for as long as allowed"
            owner = PROGRAMMING_FAULTS if kind == "ProgrammingError" else STEP_OWNERS.get(activity)
            detail = {"activity": activity, "error_type": kind}
            return f"{activity} failed{how}: {message}", detail, owner
        if isinstance(error, ApplicationError):
            kind = error.type or "ApplicationError"
            return f"{kind}: {error.message}", {"error_type": kind}, PROGRAMMING_FAULTS
        # A bug in workflow code: the exception's own words are the best description.
        kind = type(error).__name__
        return f"{kind}: {error}", {"error_type": kind}, PROGRAMMING_FAULTS
