"""A case's audit trail and its activities: how each step is recorded, once.

``CaseJournal`` is the base of every case (``CaseWorkflow``). It keeps the case's status,
step and timeline, and writes each line to the database exactly once: on the lean path
(``LEAN_BOOKKEEPING``) a line rides with the next activity that has an effect, or is
written before the case waits or ends (docs/audit-trail.md); cases opened before that
patch write one line per activity. Activities are called by reference, type-checked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy

from workflows.sla import SlaClocks

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import visibility
    from workflows.models import (
        ApprovalState,
        Audited,
        AuditEntry,
        AuditLines,
        CaseStatus,
        Notice,
        Recipient,
        TimelineEntry,
    )
    from workflows.sla_models import ClockMark, RunningClock

A = TypeVar("A")
R = TypeVar("R")
C = TypeVar("C", bound=Audited)

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


class CaseJournal:
    """The case's status, step and audit trail, and the activities that write them."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self._status = CaseStatus.RECEIVED
        self._step = "Received"
        self._timeline: list[TimelineEntry] = []
        self._seq = 0
        self._lean: bool | None = None
        # Lines recorded, in the timeline, not yet handed to an activity to write.
        self._pending: list[AuditEntry] = []
        # Durable waits (and the closing wait) in progress: lines are written at once then.
        self._waits = 0
        # The task running the procedure's steps; message handlers run in tasks of their own.
        self._main: asyncio.Task[Any] | None = None
        # The task priority of the case's activities: a procedure raises it for urgent work
        # (a VIP's rush order); the default inherits the case's own (set when it started).
        self.activity_priority = Priority.default
        # The case's SLA clocks; their marks ride with its audit lines (workflows/sla.py).
        self.sla = SlaClocks(self)

    def copies_cs_manager(self, recipient: Recipient) -> bool:
        """Whether an email to ``recipient`` goes to the CS manager too (complaints: the
        customer's emails, by the Email Communication SOP)."""
        return False

    def notice_context(self) -> dict[str, str]:
        """Facts every email template may use (the case provides them)."""
        return {"case_id": self.case_id}

    @property
    def lean(self) -> bool:
        """Whether this case batches its audit lines; asked once (as it opens), remembered."""
        if self._lean is None:
            self._lean = workflow.patched(LEAN_BOOKKEEPING)
        return self._lean

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
            priority=self.activity_priority,
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
            clocks=self.sla.take_marks(),
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
        """Write every pending line now (one activity), before the case waits or ends, with
        the clock marks no line carries yet (a clock started since the last line)."""
        while self._pending or self.sla.has_marks():
            lines, marks = self._take_pending(), self.sla.take_marks()
            try:
                await self._write_lines(
                    lines,
                    summary=f"Audit: {lines[-1].event}" if lines else "SLA clocks",
                    clocks=marks,
                )
            except BaseException:
                self._restore(lines)
                self.sla.restore_marks(marks)
                raise

    async def _write_lines(
        self, lines: tuple[AuditEntry, ...], *, summary: str, clocks: tuple[ClockMark, ...] = ()
    ) -> None:
        await self.call(
            CaseActivities.record_lines, AuditLines(lines=lines, clocks=clocks), summary=summary
        )

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

    async def wait_until(
        self,
        deadline: datetime,
        what: str,
        done: Callable[[], bool] = lambda: False,
        *,
        clock: RunningClock | None = None,
    ) -> bool:
        """Wait (durably) until ``deadline`` or ``done()``; whether ``done()`` holds.

        ``clock`` (started by ``self.sla.start``, due at ``deadline`` or earlier) runs
        while the case waits and stops as the wait ends: met when ``done()`` holds."""
        remaining = deadline - workflow.now()
        if not done() and remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await self.wait_condition(done, timeout=remaining, timeout_summary=what)
        answered = bool(done())
        await self.sla.stop(clock, met=answered)
        return answered

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
        self.sla.restore_marks(entry.clocks)
        if entry.status is not None and self._status is entry.status:
            self._status = before[0]
        if entry.step is not None and self._step == entry.step:
            self._step = before[1]
