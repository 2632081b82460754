"""Deadlines as people read them: "escalates in 3 business hours", on the business clock.

Computed on the server with the business calendar in force (``settings.calendar``) and its
``business_time_between``, so the page shows what the cases count: open hours only, weekends
and holidays skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from starter.api.work_views import Clock
from workflows.calendar import BusinessCalendar


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
        late = calendar.business_time_between(due_at, now)
        label = f"{name}: overdue by {_amount(calendar, late)}"
    else:
        span = calendar.business_time_between(now, due_at)
        label = f"{name} in {_amount(calendar, span)}" if span else f"{name} at the next opening"
    return Clock(
        name=name,
        due_at=due_at,
        label=label,
        local=local_label(calendar, due_at),
        overdue=overdue,
        warning=not overdue and warn_at is not None and warn_at <= now,
    )
