"""SLA clocks: every deadline a case waits on, on business time, with its warning and breach.

One mechanism for every wait (docs/sla-clocks.md). A clock starts when its wait starts, with
its due instant; its budget is the business time until then, and its owner is warned at 75%
of that budget. It stops when its wait ends: met (the awaited thing happened) or not (the
procedure moved on at the deadline: a breach, for a service level the company owes). While
it runs, a timer fires at the warning (an email to the owner, an audit line, a metric) and
at the due instant (an audit line, a metric): both rare, so only they cost activities. A
clock's start and stop ride, as marks, with the case's next audit line (``AuditEntry.clocks``)
and are written in that line's transaction.

Cases opened before clocks existed never gain one: ``workflow.patched`` is asked once, as the
case opens (``enable``), and the answer kept.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Protocol

from temporalio import workflow

from workflows import metrics

with workflow.unsafe.imports_passed_through():
    from workflows.calendar import BusinessCalendar
    from workflows.models import CaseStatus, Recipient
    from workflows.sla_models import WARN_AT_SHARE, Clock, ClockMark, Owner, RunningClock

# Cases opened from this change on run their waits under SLA clocks.
SLA_CLOCKS = "sla-clocks"


class ClockedCase(Protocol):
    """What the clocks need of their case: its id, its audit trail and its emails."""

    @property
    def case_id(self) -> str: ...

    async def record(
        self, event: str, *, actor: str = ..., detail: dict[str, str] | None = ...
    ) -> None: ...

    async def notify(
        self,
        template: str,
        recipient: Recipient,
        *,
        staff_ids: tuple[str, ...] = ...,
        department: str | None = ...,
        context: dict[str, str] | None = ...,
        status: CaseStatus | None = ...,
        event: str | None = ...,
        detail: dict[str, str] | None = ...,
        copy_cs_manager: bool | None = ...,
    ) -> None: ...


class SlaClocks:
    """A case's clocks, and the marks that wait for an audit line to ride with."""

    def __init__(self, case: ClockedCase) -> None:
        self._case = case
        self._procedure = ""
        self._calendar: BusinessCalendar | None = None
        self._runs: dict[Clock, int] = {}
        self._marks: dict[str, ClockMark] = {}
        self._running: list[RunningClock] = []

    @property
    def enabled(self) -> bool:
        return self._calendar is not None

    def enable(self, *, procedure: str, calendar: BusinessCalendar) -> None:
        """As the case opens: clocks for cases opened since they exist (asked once)."""
        if workflow.patched(SLA_CLOCKS):
            self._procedure, self._calendar = procedure, calendar

    # ---- starting and stopping ------------------------------------------------------------

    def start(
        self,
        clock: Clock,
        *,
        due: datetime | None = None,
        within: timedelta | None = None,
        owner: str,
        staff_ids: tuple[str, ...] = (),
        department: str | None = None,
        started: datetime | None = None,
        ends_at_due: bool = False,
    ) -> RunningClock | None:
        """Start ``clock`` now (or at ``started``, when its wait began a moment ago),
        falling due at ``due`` or after ``within`` of business time; None for a case
        without clocks.

        ``owner`` is who is warned: a role (``Owner``), or a department (``department``
        set) or the staff in ``staff_ids``. Its mark rides with the case's next line, so
        start a clock before the email that announces its wait: no activity of its own.
        ``ends_at_due``: the wait that carries it ends at ``due`` at the latest, and its
        stop judges the breach (no timer of its own, which could fire in the same workflow
        task as the wait's and breach a deadline the procedure meets at that instant).
        """
        if self._calendar is None:
            return None
        now = started or workflow.now()
        if due is None:
            assert within is not None, "a clock needs its due instant or its budget"
            due = self._calendar.add_business_time(now, within)
        budget = self._calendar.business_time_between(now, due)
        run = self._runs.get(clock, 0) + 1
        self._runs[clock] = run
        running = RunningClock(
            mark=ClockMark(
                key=f"{self._case.case_id}/{clock.value}/{run}",
                case_id=self._case.case_id,
                procedure=self._procedure,
                clock=clock,
                owner=owner,
                budget_seconds=int(budget.total_seconds()),
                started_at=now,
                # A budget of no business time at all (opened and due over a weekend)
                # warns at its due instant, which is to say never (``_watch``).
                warn_at=min(self._calendar.add_business_time(now, budget * WARN_AT_SHARE), due),
                due_at=due,
            ),
            staff_ids=staff_ids,
            department=department,
            ends_at_due=ends_at_due,
        )
        self._running.append(running)
        self._note(running.mark)
        if clock.is_service_level:
            running.watcher = asyncio.create_task(self._watch(running))
        return running

    async def stop(self, running: RunningClock | None, *, met: bool) -> None:
        """The clock's wait is over: ``met`` when the awaited thing happened in time. A
        service level not met is breached now (unless its due timer already did)."""
        if running is None or running.stopped:
            return
        if not met and running.clock.is_service_level and running.mark.breached_at is None:
            await self._breach(running)
        self._finish(running, met=met)
        if running.busy:  # an email it is sending completes first
            await workflow.wait_condition(lambda: not running.busy)

    def ends_with_wait(self, running: RunningClock | None) -> None:
        """The wait starting now ends at ``running``'s due instant at the latest, and the
        procedure acts then: its end judges the breach (``ends_at_due``), not a timer."""
        if running is not None:
            running.ends_at_due = True

    async def stop_all(self) -> None:
        """The case ends: every clock still running stops; one past its due is breached."""
        for running in list(self._running):
            await self.stop(running, met=workflow.now() < running.mark.due_at)

    def stop_all_now(self) -> None:
        """The case stops on a fault: its clocks stop with its last line."""
        for running in list(self._running):
            self._finish(running, met=False)

    def _finish(self, running: RunningClock, *, met: bool) -> None:
        mark, now = running.mark, workflow.now()
        if met and mark.breached_at is None:
            # Met by a procedure acting at the deadline itself (the follow-up sent as its
            # 24 hours end): it stops at its due instant, the timer's latency is no lateness.
            now = min(now, mark.due_at)
        running.mark = mark.model_copy(update={"stopped_at": now})
        self._running.remove(running)
        self._note(running.mark)

    # ---- the warning and the breach -------------------------------------------------------

    async def _watch(self, running: RunningClock) -> None:
        warns = running.mark.warn_at < running.mark.due_at
        if warns and await self._reaches(running, running.mark.warn_at, "warning"):
            running.busy = True
            try:
                await self._warn(running)
            finally:
                running.busy = False
        if running.ends_at_due:
            return
        # Asked again once due: a wait that ends then may have taken the clock meanwhile.
        if await self._reaches(running, running.mark.due_at, "due") and not running.ends_at_due:
            running.busy = True
            try:
                await self._breach(running)
            finally:
                running.busy = False

    async def _reaches(self, running: RunningClock, instant: datetime, what: str) -> bool:
        """Sleep until ``instant``; whether the clock still runs then. The timer is never
        cancelled: a clock whose wait ends at its own due instant would cancel a timer
        firing in the same workflow task (which the server refuses); a stopped clock's
        timer fires into nothing, or the case has closed by then."""
        remaining = instant - workflow.now()
        if not running.stopped and remaining.total_seconds() > 0:
            await workflow.sleep(remaining, summary=f"SLA {running.clock.value}: {what}")
        return not running.stopped and running.mark.breached_at is None

    async def _warn(self, running: RunningClock) -> None:
        mark = running.mark
        # The instant it reached 75%: its timer fires then, give or take a workflow task.
        running.mark = mark.model_copy(update={"warned_at": mark.warn_at})
        self._note(running.mark)
        recipient, staff_ids, department = _recipient(running)
        await self._case.notify(
            "sla_warning",
            recipient,
            staff_ids=staff_ids,
            department=department,
            event="sla_warning",
            detail=_detail(mark),
            context={
                "clock": mark.clock.value.replace("_", " "),
                "due_at": _show(self._calendar, mark.due_at),
            },
            copy_cs_manager=False,
        )
        metrics.sla_warned(mark.procedure, mark.clock.value)

    async def _breach(self, running: RunningClock) -> None:
        mark = running.mark
        running.mark = mark.model_copy(update={"breached_at": mark.due_at})
        self._note(running.mark)
        await self._case.record("sla_breached", detail=_detail(mark))
        metrics.sla_breached(mark.procedure, mark.clock.value)

    # ---- marks riding with the audit trail ------------------------------------------------

    def _note(self, mark: ClockMark) -> None:
        earlier = self._marks.get(mark.key)
        self._marks[mark.key] = earlier.merged(mark) if earlier else mark

    def has_marks(self) -> bool:
        return bool(self._marks)

    def take_marks(self) -> tuple[ClockMark, ...]:
        """The marks not yet handed to a line (the journal attaches them to its next)."""
        marks, self._marks = tuple(self._marks.values()), {}
        return marks

    def restore_marks(self, marks: tuple[ClockMark, ...]) -> None:
        """Marks whose line was never written: pending again, for the next line."""
        for mark in marks:
            self._note(mark)


def _recipient(running: RunningClock) -> tuple[Recipient, tuple[str, ...], str | None]:
    if running.department is not None:
        return Recipient.DEPARTMENT, (), running.department
    if running.mark.owner == Owner.CS_MANAGER:
        return Recipient.CS_MANAGER, (), None
    # The approvers, or a named member of staff (the CS manager when none is found).
    return Recipient.STAFF, running.staff_ids, None


def _detail(mark: ClockMark) -> dict[str, str]:
    return {"clock": mark.clock.value, "owner": mark.owner, "due_at": mark.due_at.isoformat()}


def _show(calendar: BusinessCalendar | None, instant: datetime) -> str:
    assert calendar is not None
    local = calendar.local(instant)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
