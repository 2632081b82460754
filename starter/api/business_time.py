"""Deadlines as people read them: "escalates in 3 business hours", on the business clock.

Computed on the server from the business calendar in force (``settings.calendar``), so the
page shows what the cases count: open hours only, weekends and holidays skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from starter.api.work_views import Clock
from workflows.calendar import BusinessCalendar


def business_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Open hours from ``start`` to ``end`` (zero when ``end`` is not later)."""
    if end <= start:
        return timedelta(0)
    total = timedelta(0)
    day = calendar.local(start).date()
    last = calendar.local(end).date()
    while day <= last:
        if calendar.is_business_day(day):
            opens = calendar.instant(day, calendar.opens)
            closes = calendar.instant(day, calendar.closes)
            begin, finish = max(start, opens), min(end, closes)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return total


def _amount(calendar: BusinessCalendar, span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        count, unit = max(minutes, 1), "business minute"
    elif span < calendar.business_day * 2:
        count, unit = round(minutes / 60), "business hour"
    else:
        count, unit = round(span / calendar.business_day), "business day"
    return f"{count} {unit}{'s' if count != 1 else ''}"


def local_label(calendar: BusinessCalendar, instant: datetime) -> str:
    """``instant`` on the business clock with its zone: "Fri 27 Nov 2026, 14:00 EST"."""
    return calendar.local(instant).strftime("%a %d %b %Y, %H:%M %Z")


def clock(
    calendar: BusinessCalendar,
    name: str,
    due_at: datetime,
    now: datetime,
    warn_at: datetime | None = None,
) -> Clock:
    """A deadline ``name`` ("escalates") at ``due_at``, labelled as of ``now``; past
    ``warn_at`` (and not yet due) it is a warning."""
    overdue = due_at <= now
    if overdue:
        late = business_time_between(calendar, due_at, now)
        label = f"{name}: overdue by {_amount(calendar, late)}"
    else:
        span = business_time_between(calendar, now, due_at)
        label = f"{name} in {_amount(calendar, span)}" if span else f"{name} at the next opening"
    return Clock(
        name=name,
        due_at=due_at,
        label=label,
        local=local_label(calendar, due_at),
        overdue=overdue,
        warning=not overdue and warn_at is not None and warn_at <= now,
    )
