"""Schedule arithmetic: due times and periods in the org's zone, across DST changes."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from reports.schedule import Rule, latest_due, next_due, period_for_due_day

NY = ZoneInfo("America/New_York")
MANILA = ZoneInfo("Asia/Manila")
UTC = dt.UTC


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_daily_in_manila_is_due_at_local_hour_every_day() -> None:
    rule = Rule(frequency="daily", hour=8)
    # 08:00 in Manila (UTC+8, no DST) is 00:00 UTC.
    period = latest_due(rule, MANILA, utc(2026, 11, 3, 0, 30))
    assert period is not None
    assert period.due_at == utc(2026, 11, 3, 0, 0)
    assert period.start == utc(2026, 11, 1, 16, 0)  # 2 Nov 00:00 Manila
    assert period.end == utc(2026, 11, 2, 16, 0)  # 3 Nov 00:00 Manila


def test_just_before_the_due_hour_the_previous_period_is_latest() -> None:
    rule = Rule(frequency="daily", hour=8)
    period = latest_due(rule, MANILA, utc(2026, 11, 2, 23, 59))
    assert period is not None
    assert period.due_at == utc(2026, 11, 2, 0, 0)


def test_weekly_new_york_period_spanning_spring_forward_is_167_hours() -> None:
    # DST began Sunday 8 March 2026 in New York; the week Mon 2 - Mon 9 March lost an hour.
    rule = Rule(frequency="weekly", hour=8, weekday=0)
    period = latest_due(rule, NY, utc(2026, 3, 9, 13, 0))
    assert period is not None
    assert period.due_at == utc(2026, 3, 9, 12, 0)  # 08:00 EDT
    assert period.start == utc(2026, 3, 2, 5, 0)  # 00:00 EST
    assert period.end == utc(2026, 3, 9, 4, 0)  # 00:00 EDT
    assert period.end - period.start == dt.timedelta(hours=167)


def test_weekly_new_york_period_spanning_fall_back_is_169_hours() -> None:
    rule = Rule(frequency="weekly", hour=8, weekday=0)
    period = period_for_due_day(rule, dt.date(2026, 11, 2), NY)
    assert period.due_at == utc(2026, 11, 2, 13, 0)  # 08:00 EST
    assert period.end - period.start == dt.timedelta(hours=169)


def test_due_time_in_the_skipped_hour_moves_forward_by_the_gap() -> None:
    # 02:30 on 8 March 2026 does not exist in New York; it is read as 03:30 EDT.
    rule = Rule(frequency="daily", hour=2)
    period = period_for_due_day(rule, dt.date(2026, 3, 8), NY)
    assert period.due_at == utc(2026, 3, 8, 7, 0)
    assert period.due_at.astimezone(NY).hour == 3


def test_due_time_in_the_repeated_hour_fires_once_at_the_first() -> None:
    rule = Rule(frequency="daily", hour=1)
    period = period_for_due_day(rule, dt.date(2026, 11, 1), NY)
    assert period.due_at == utc(2026, 11, 1, 5, 0)  # 01:00 EDT, the first of the two
    after_second = latest_due(rule, NY, utc(2026, 11, 1, 6, 30))  # during 01:xx EST
    assert after_second == period


def test_daily_periods_tile_time_across_dst_without_gaps() -> None:
    rule = Rule(frequency="daily", hour=7)
    days = [dt.date(2026, 3, 6) + dt.timedelta(days=i) for i in range(5)]
    periods = [period_for_due_day(rule, d, NY) for d in days]
    for earlier, later in itertools.pairwise(periods):
        assert earlier.end == later.start
    assert {p.end - p.start for p in periods} == {dt.timedelta(hours=24), dt.timedelta(hours=23)}


@pytest.mark.parametrize(
    ("due_day", "previous"),
    [
        (dt.date(2026, 2, 28), dt.date(2026, 1, 31)),  # 31 clamps to February's 28
        (dt.date(2026, 3, 31), dt.date(2026, 2, 28)),
        (dt.date(2028, 2, 29), dt.date(2028, 1, 31)),  # leap year
        (dt.date(2026, 1, 31), dt.date(2025, 12, 31)),  # across the year
    ],
)
def test_monthly_day_31_is_clamped_to_the_months_last_day(
    due_day: dt.date, previous: dt.date
) -> None:
    rule = Rule(frequency="monthly", hour=9, day_of_month=31)
    period = period_for_due_day(rule, due_day, MANILA)
    assert period.start.astimezone(MANILA).date() == previous
    assert period.end.astimezone(MANILA).date() == due_day


def test_monthly_latest_and_next() -> None:
    rule = Rule(frequency="monthly", hour=9, day_of_month=1)
    now = utc(2026, 11, 15, 0, 0)
    latest = latest_due(rule, MANILA, now)
    assert latest is not None
    assert latest.due_at == utc(2026, 11, 1, 1, 0)
    assert latest.start.astimezone(MANILA).date() == dt.date(2026, 10, 1)
    assert next_due(rule, MANILA, now).due_at == utc(2026, 12, 1, 1, 0)


def test_next_due_is_strictly_after_now() -> None:
    rule = Rule(frequency="weekly", hour=8, weekday=0)
    monday_8 = utc(2026, 11, 9, 0, 0)  # Monday 08:00 Manila
    assert next_due(rule, MANILA, monday_8).due_at == utc(2026, 11, 16, 0, 0)
    assert latest_due(rule, MANILA, monday_8) is not None


def test_the_same_rule_means_local_time_in_each_zone() -> None:
    rule = Rule(frequency="daily", hour=8)
    now = utc(2026, 7, 1, 18, 0)
    ny, manila = latest_due(rule, NY, now), latest_due(rule, MANILA, now)
    assert ny is not None
    assert manila is not None
    assert ny.due_at.astimezone(NY).hour == 8
    assert manila.due_at.astimezone(MANILA).hour == 8
    assert ny.due_at != manila.due_at


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="weekday"):
        Rule(frequency="weekly", hour=8)
    with pytest.raises(ValueError, match="day of the month"):
        Rule(frequency="monthly", hour=8, day_of_month=32)
    with pytest.raises(ValueError, match="hour"):
        Rule(frequency="daily", hour=24)
