"""The one business-hours calendar every procedure uses.

Pure and deterministic: no clock is read here. Callers pass the instant to start from
(``workflow.now()`` inside a workflow), so a replay computes the same deadlines.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A calendar with no open day in this many days is misconfigured, not merely quiet.
_SEARCH_LIMIT_DAYS = 366 * 2


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class BusinessCalendar(BaseModel):
    """Opening hours in a local time zone, working weekdays and holidays."""

    model_config = ConfigDict(frozen=True)

    timezone: str = "America/New_York"
    opens: time = time(8, 0)
    closes: time = time(20, 0)
    workdays: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), description="0 = Monday")
    holidays: tuple[date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            _zone(value)
        except ZoneInfoNotFoundError as err:  # a KeyError, which pydantic would not report
            raise ValueError(f"unknown time zone {value!r}") from err
        return value

    @field_validator("workdays")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(day not in range(7) for day in value):
            raise ValueError("workdays must be weekday numbers 0 (Monday) to 6 (Sunday)")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _opens_before_closes(self) -> BusinessCalendar:
        if self.opens >= self.closes:
            raise ValueError("opens must be earlier than closes")
        return self

    @property
    def business_day(self) -> timedelta:
        """The length of one business day, so 'N business days' is N of these."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.workdays and day not in self.holidays

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """Opening and closing instants of ``day`` in UTC, or None when closed all day."""
        if not self.is_business_day(day):
            return None
        zone = _zone(self.timezone)
        # Wall-clock opening hours, converted per day, so DST changes move them correctly.
        opens = datetime.combine(day, self.opens, zone).astimezone(UTC)
        closes = datetime.combine(day, self.closes, zone).astimezone(UTC)
        return opens, closes

    def is_open(self, instant: datetime) -> bool:
        instant = _aware(instant)
        window = self._window(instant.astimezone(_zone(self.timezone)).date())
        return window is not None and window[0] <= instant < window[1]

    def local(self, instant: datetime) -> datetime:
        """``instant`` on the business's wall clock, for what customers read."""
        return _aware(instant).astimezone(_zone(self.timezone))

    def instant(self, day: date, at: time) -> datetime:
        """``at`` o'clock on ``day`` on the business's wall clock, as a UTC instant."""
        return datetime.combine(day, at, _zone(self.timezone)).astimezone(UTC)

    def next_open(self, instant: datetime) -> datetime:
        """The first instant at or after ``instant`` when the business is open."""
        return self.add_business_time(instant, timedelta(0))

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when ``duration`` of open hours have passed since ``start``."""
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        cursor = _aware(start).astimezone(UTC)
        remaining = duration
        day = cursor.astimezone(_zone(self.timezone)).date()
        for _ in range(_SEARCH_LIMIT_DAYS):
            window = self._window(day)
            if window is not None:
                opens, closes = window
                begin = max(cursor, opens)
                if begin < closes:
                    if remaining == timedelta(0):
                        return begin
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("business calendar has no open hours in the next two years")

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The open hours between ``start`` and ``end`` (zero when ``end`` is not later):
        the inverse of ``add_business_time``, so a deadline's budget can be measured."""
        start, end = _aware(start), _aware(end)
        zone = _zone(self.timezone)
        total = timedelta(0)
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        while day <= last:
            window = self._window(day)
            if window is not None:
                overlap = min(end, window[1]) - max(start, window[0])
                total += max(overlap, timedelta(0))
            day += timedelta(days=1)
        return total

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """``days`` full business days of open hours after ``start``."""
        return self.add_business_time(start, self.business_day * days)


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("business-hours arithmetic needs a timezone-aware instant")
    return instant
