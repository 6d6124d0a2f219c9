"""Pure schedule arithmetic: when a report is due and which period it covers. No ORM.

A schedule fires at a local hour on its due days (every day, one weekday, or one day of the
month clamped to the month's length) in the org's time zone. The report due on day D covers
the local days from the previous due day up to D, i.e. [previous due day 00:00, D 00:00)
local, so consecutive reports tile time without gaps or overlaps whatever the DST changes.

Local times that do not exist (the hour skipped when clocks spring forward) are read with
the offset in force before the change, which moves them forward by the gap (02:30 becomes
03:30). Ambiguous times (the repeated hour in autumn) take their first occurrence. Both are
zoneinfo's `fold=0` behaviour; we convert through UTC so the result is a real instant.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


class Frequency:
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    ALL = (DAILY, WEEKLY, MONTHLY)


@dataclass(frozen=True)
class Rule:
    frequency: str
    hour: int
    weekday: int | None = None  # Monday = 0, for weekly
    day_of_month: int | None = None  # 1..31, clamped to the month's length, for monthly

    def __post_init__(self) -> None:
        if self.frequency not in Frequency.ALL:
            raise ValueError(f"Unknown frequency {self.frequency!r}.")
        if not 0 <= self.hour <= 23:
            raise ValueError("The hour is 0..23.")
        if self.frequency == Frequency.WEEKLY and (
            self.weekday is None or not 0 <= self.weekday <= 6
        ):
            raise ValueError("A weekly schedule needs a weekday 0 (Monday) .. 6 (Sunday).")
        if self.frequency == Frequency.MONTHLY and (
            self.day_of_month is None or not 1 <= self.day_of_month <= 31
        ):
            raise ValueError("A monthly schedule needs a day of the month 1..31.")


@dataclass(frozen=True)
class Period:
    """What one report covers (UTC instants) and when it falls due."""

    start: dt.datetime
    end: dt.datetime
    due_at: dt.datetime


def local_instant(day: dt.date, hour: int, tz: ZoneInfo) -> dt.datetime:
    """`day` at `hour` o'clock in `tz`, as an aware UTC datetime (see the module doc on DST)."""
    naive = dt.datetime(day.year, day.month, day.day, hour)  # noqa: DTZ001 - zone added next
    return naive.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)


def _month_day(year: int, month: int, wanted: int) -> dt.date:
    return dt.date(year, month, min(wanted, calendar.monthrange(year, month)[1]))


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def is_due_day(rule: Rule, day: dt.date) -> bool:
    if rule.frequency == Frequency.DAILY:
        return True
    if rule.frequency == Frequency.WEEKLY:
        return day.weekday() == rule.weekday
    assert rule.day_of_month is not None  # noqa: S101  # nosec B101 # type narrowing; Rule validates it
    return day == _month_day(day.year, day.month, rule.day_of_month)


def previous_due_day(rule: Rule, day: dt.date) -> dt.date:
    """The due day before `day` (`day` itself need not be a due day)."""
    if rule.frequency == Frequency.DAILY:
        return day - dt.timedelta(days=1)
    if rule.frequency == Frequency.WEEKLY:
        assert rule.weekday is not None  # noqa: S101  # nosec B101 # type narrowing; Rule validates it
        back = (day.weekday() - rule.weekday) % 7 or 7
        return day - dt.timedelta(days=back)
    assert rule.day_of_month is not None  # noqa: S101  # nosec B101 # type narrowing; Rule validates it
    this_month = _month_day(day.year, day.month, rule.day_of_month)
    if this_month < day:
        return this_month
    year, month = _shift_month(day.year, day.month, -1)
    return _month_day(year, month, rule.day_of_month)


def next_due_day(rule: Rule, day: dt.date) -> dt.date:
    """The first due day on or after `day`."""
    candidate = day
    # At most 31 steps for monthly, 6 for weekly, 0 for daily.
    while not is_due_day(rule, candidate):
        candidate += dt.timedelta(days=1)
    return candidate


def period_for_due_day(rule: Rule, day: dt.date, tz: ZoneInfo) -> Period:
    return Period(
        start=local_instant(previous_due_day(rule, day), 0, tz),
        end=local_instant(day, 0, tz),
        due_at=local_instant(day, rule.hour, tz),
    )


def latest_due(rule: Rule, tz: ZoneInfo, now: dt.datetime) -> Period | None:
    """The most recent period whose due time is at or before `now` (None only in theory)."""
    today = now.astimezone(tz).date()
    day = today if is_due_day(rule, today) else previous_due_day(rule, today)
    for _ in range(3):
        period = period_for_due_day(rule, day, tz)
        if period.due_at <= now:
            return period
        day = previous_due_day(rule, day)
    return None


def next_due(rule: Rule, tz: ZoneInfo, now: dt.datetime) -> Period:
    """The first period whose due time is strictly after `now`."""
    day = next_due_day(rule, now.astimezone(tz).date())
    while True:
        period = period_for_due_day(rule, day, tz)
        if period.due_at > now:
            return period
        day = next_due_day(rule, day + dt.timedelta(days=1))
