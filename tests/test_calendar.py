"""The business-hours calendar: pure arithmetic on instants, no clock and no server.

Hours of Operation: 8 AM - 8 PM Eastern, Monday-Friday, closed on the listed holidays. Every
expectation is written as a wall-clock time in New York; the assertions compare instants, and
the DST cases also pin the UTC offset so a result one hour off cannot pass.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from settings import Settings
from workflows.calendar import BusinessCalendar

NEW_YORK = ZoneInfo("America/New_York")
INDEPENDENCE_DAY_OBSERVED = date(2026, 7, 3)  # a Friday
THANKSGIVING = date(2026, 11, 26)  # a Thursday

CALENDAR = BusinessCalendar(holidays=(INDEPENDENCE_DAY_OBSERVED, THANKSGIVING))


def ny(day: str, clock: str) -> datetime:
    """An instant given as New York wall-clock time, e.g. ny("2026-11-24", "19:00")."""
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), NEW_YORK)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# ---- adding business time ------------------------------------------------------------------


def test_time_within_opening_hours_is_added_as_is() -> None:
    assert CALENDAR.add_business_time(ny("2026-11-24", "09:00"), hours(4)) == ny(
        "2026-11-24", "13:00"
    )


def test_evening_hours_do_not_count() -> None:
    # Tuesday 19:00: one hour left today, the second the next morning.
    assert CALENDAR.add_business_time(ny("2026-11-24", "19:00"), hours(2)) == ny(
        "2026-11-25", "09:00"
    )


def test_weekend_does_not_count() -> None:
    # Friday 19:00 + 2h: one hour on Friday, one on Monday morning.
    assert CALENDAR.add_business_time(ny("2026-03-13", "19:00"), hours(2)) == ny(
        "2026-03-16", "09:00"
    )


def test_holiday_from_the_list_does_not_count() -> None:
    # Thursday 19:00 before the observed Independence Day: Friday is closed, so Monday.
    assert CALENDAR.add_business_time(ny("2026-07-02", "19:00"), hours(2)) == ny(
        "2026-07-06", "09:00"
    )


def test_the_same_day_counts_when_it_is_not_a_listed_holiday() -> None:
    without_holidays = BusinessCalendar()
    assert without_holidays.add_business_time(ny("2026-07-02", "19:00"), hours(2)) == ny(
        "2026-07-03", "09:00"
    )


def test_four_hours_over_thanksgiving_land_on_friday() -> None:
    # Wednesday 18:00: two hours that evening, Thursday closed, two hours on Friday.
    assert CALENDAR.add_business_time(ny("2026-11-25", "18:00"), hours(4)) == ny(
        "2026-11-27", "10:00"
    )


def test_start_before_opening_counts_from_opening() -> None:
    assert CALENDAR.add_business_time(ny("2026-11-24", "06:30"), hours(1)) == ny(
        "2026-11-24", "09:00"
    )


def test_start_on_a_saturday_counts_from_monday_opening() -> None:
    assert CALENDAR.add_business_time(ny("2026-11-21", "12:00"), hours(1)) == ny(
        "2026-11-23", "09:00"
    )


def test_a_deadline_may_fall_exactly_at_closing_time() -> None:
    deadline = CALENDAR.add_business_time(ny("2026-11-24", "16:00"), hours(4))
    assert deadline == ny("2026-11-24", "20:00")
    assert not CALENDAR.is_open(deadline)


def test_starting_exactly_at_closing_time_counts_from_next_opening() -> None:
    assert CALENDAR.add_business_time(ny("2026-11-24", "20:00"), hours(1)) == ny(
        "2026-11-25", "09:00"
    )
    assert CALENDAR.next_open(ny("2026-11-24", "20:00")) == ny("2026-11-25", "08:00")


def test_next_open_of_an_open_instant_is_itself() -> None:
    instant = ny("2026-11-24", "12:34")
    assert CALENDAR.next_open(instant) == instant


def test_a_start_in_another_zone_is_the_same_instant() -> None:
    # 23:30 UTC on Tuesday is 18:30 in New York: 1.5 hours left that day.
    start = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    assert CALENDAR.add_business_time(start, hours(2)) == ny("2026-11-25", "08:30")


# ---- daylight saving time -------------------------------------------------------------------


def test_dst_start_in_march_keeps_wall_clock_opening_hours() -> None:
    # EST before the weekend of 8 March 2026, EDT after it: Monday opens at 12:00 UTC, not 13:00.
    deadline = CALENDAR.add_business_time(ny("2026-03-06", "19:00"), hours(2))
    assert deadline == ny("2026-03-09", "09:00")
    assert deadline.astimezone(UTC) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_dst_end_in_november_keeps_wall_clock_opening_hours() -> None:
    # EDT before the weekend of 1 November 2026, EST after it: Monday opens at 13:00 UTC.
    deadline = CALENDAR.add_business_time(ny("2026-10-30", "19:00"), hours(2))
    assert deadline == ny("2026-11-02", "09:00")
    assert deadline.astimezone(UTC) == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_a_day_that_loses_an_hour_to_dst_has_one_business_hour_less() -> None:
    # Open 01:00-04:00 every day: on 8 March 2026 clocks jump 02:00 -> 03:00, so that day
    # has two real hours, and the third is taken the next night.
    night = BusinessCalendar(opens=time(1), closes=time(4), workdays=(0, 1, 2, 3, 4, 5, 6))
    assert night.add_business_time(ny("2026-03-08", "01:00"), hours(3)) == ny("2026-03-09", "02:00")


def test_a_day_that_gains_an_hour_to_dst_has_one_business_hour_more() -> None:
    # On 1 November 2026 01:00-02:00 happens twice: 01:00 EDT to 04:00 EST is four real hours.
    night = BusinessCalendar(opens=time(1), closes=time(4), workdays=(0, 1, 2, 3, 4, 5, 6))
    start = ny("2026-11-01", "01:00")
    assert night.add_business_time(start, hours(4)) == ny("2026-11-01", "04:00")
    assert night.add_business_time(start, hours(4)) - start == hours(4)


# ---- business days -------------------------------------------------------------------------


def test_one_business_day_is_the_length_of_the_opening_hours() -> None:
    assert CALENDAR.business_day == hours(12)


def test_three_business_days_from_monday_morning_end_thursday_morning() -> None:
    assert CALENDAR.add_business_days(ny("2026-11-16", "10:00"), 3) == ny("2026-11-19", "10:00")


def test_business_days_skip_the_weekend() -> None:
    assert CALENDAR.add_business_days(ny("2026-11-20", "10:00"), 1) == ny("2026-11-23", "10:00")


def test_business_days_skip_holidays() -> None:
    # Tuesday + 3 business days: Wednesday, (Thanksgiving), Friday, Monday.
    assert CALENDAR.add_business_days(ny("2026-11-24", "10:00"), 3) == ny("2026-11-30", "10:00")


def test_business_days_from_an_evening_start_count_from_next_opening() -> None:
    assert CALENDAR.add_business_days(ny("2026-11-23", "21:00"), 1) == ny("2026-11-24", "20:00")


def test_calendar_from_settings_uses_the_holiday_setting() -> None:
    calendar = Settings(holidays=(THANKSGIVING,)).calendar
    assert calendar.timezone == "America/New_York"
    assert (calendar.opens, calendar.closes) == (time(8), time(20))
    assert not calendar.is_business_day(THANKSGIVING)
    assert calendar.is_business_day(date(2026, 11, 25))


# ---- refusing what makes no sense ----------------------------------------------------------


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CALENDAR.add_business_time(datetime(2026, 11, 24, 9, 0), hours(1))  # noqa: DTZ001


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        CALENDAR.add_business_time(ny("2026-11-24", "09:00"), hours(-1))


def test_opening_at_or_after_closing_is_refused() -> None:
    with pytest.raises(ValidationError, match="opens must be earlier than closes"):
        BusinessCalendar(opens=time(20), closes=time(8))
    with pytest.raises(ValidationError, match="opens must be earlier than closes"):
        BusinessCalendar(opens=time(9), closes=time(9))


@pytest.mark.parametrize("workdays", [(7,), (-1, 0), ()])
def test_an_impossible_weekday_is_refused(workdays: tuple[int, ...]) -> None:
    with pytest.raises(ValidationError) as error:
        BusinessCalendar(workdays=workdays)
    assert error.value.errors()[0]["loc"] == ("workdays",)


def test_an_unknown_time_zone_is_refused_as_a_validation_error() -> None:
    with pytest.raises(ValidationError) as error:
        BusinessCalendar(timezone="America/Atlantis")
    assert error.value.errors()[0]["loc"] == ("timezone",)
    assert "America/Atlantis" in str(error.value)


def test_a_calendar_that_never_opens_is_refused() -> None:
    every_day = BusinessCalendar(
        workdays=(0,), holidays=tuple(date(2026, 1, 5) + timedelta(weeks=w) for w in range(110))
    )
    with pytest.raises(ValueError, match="no open hours"):
        every_day.add_business_time(ny("2026-01-01", "09:00"), hours(1))


def test_business_time_between_counts_only_open_hours_across_a_weekend() -> None:
    friday_afternoon, monday_noon = ny("2026-11-20", "16:00"), ny("2026-11-23", "12:00")

    assert CALENDAR.business_time_between(friday_afternoon, monday_noon) == timedelta(hours=8)


def test_business_time_between_is_the_inverse_of_adding_business_time() -> None:
    start = ny("2026-11-25", "19:30")  # the evening before Thanksgiving
    for hours in (0, 1, 4, 12, 30):
        due = CALENDAR.add_business_time(start, timedelta(hours=hours))
        assert CALENDAR.business_time_between(start, due) == timedelta(hours=hours)


def test_business_time_between_is_zero_backwards_or_while_closed() -> None:
    saturday, sunday = ny("2026-11-21", "09:00"), ny("2026-11-22", "18:00")

    assert CALENDAR.business_time_between(sunday, saturday) == timedelta(0)
    assert CALENDAR.business_time_between(saturday, sunday) == timedelta(0)
