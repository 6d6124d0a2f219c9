"""feedback_stats' single grouping-sets query against a plain Python count of the same rows."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from feedback.models import Feedback
from feedback.selectors import feedback_stats
from tenants.models import Organization

pytestmark = pytest.mark.django_db

SINCE = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)  # a Monday, mid-morning
UNTIL = SINCE + dt.timedelta(days=16)


def _fb(org: Organization, hours: float, **fields: Any) -> Feedback:
    defaults: dict[str, Any] = {
        "text": "x",
        "sentiment": "neutral",
        "language": "en",
        "language_score": 0.9,
        "source": "api",
    }
    return Feedback(
        organization=org, received_at=SINCE + dt.timedelta(hours=hours), **{**defaults, **fields}
    )


@pytest.fixture
def rows(org: Organization, other_org: Organization) -> list[Feedback]:
    Feedback.objects.bulk_create(
        [
            _fb(org, 0, sentiment="negative", category="wifi", source="form"),
            _fb(org, 1, sentiment="negative", corrected_sentiment="positive", category="wifi"),
            _fb(org, 20, sentiment="positive", category="wifi", corrected_category="canteen"),
            _fb(org, 30, language="tl", flagged=True, reasons=["abuse"], source="sms"),
            _fb(org, 50, sentiment="neutral", corrected_sentiment="negative", source=""),
            _fb(org, 170, language="ceb", category="grades", flagged=True, reasons=["spam_link"]),
            _fb(org, 200, sentiment="positive", corrected_category="teaching"),
            _fb(org, 380, sentiment="negative", language="other", source="csv"),
            # Outside the period, on either side: not counted.
            _fb(org, -1, sentiment="negative", flagged=True),
            _fb(org, 16 * 24, sentiment="negative", flagged=True),
            # Another org's feedback in the period: never counted.
            _fb(other_org, 2, sentiment="negative", flagged=True, source="leak"),
        ]
    )
    return list(
        Feedback.objects.filter(
            organization=org, received_at__gte=SINCE, received_at__lt=UNTIL
        ).order_by("received_at")
    )


def _bucket(moment: dt.datetime, interval: str) -> dt.datetime:
    day = moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday()) if interval == "week" else day


def _expected(rows: list[Feedback], interval: str) -> dict[str, Any]:
    """The same statistics, the slow and obvious way."""
    buckets: dict[dt.datetime, list[Feedback]] = {}
    for fb in rows:
        buckets.setdefault(_bucket(fb.received_at, interval), []).append(fb)
    return {
        "since": SINCE,
        "until": UNTIL,
        "interval": interval,
        "total": len(rows),
        "sentiment": dict(Counter(fb.effective_sentiment for fb in rows)),
        "language": dict(Counter(fb.language for fb in rows)),
        "category": dict(Counter(fb.effective_category or "none" for fb in rows)),
        "source": dict(Counter(fb.source for fb in rows)),
        "flagged": sum(fb.flagged for fb in rows),
        "series": [
            {
                "start": start,
                "total": len(group),
                **{
                    s: sum(fb.effective_sentiment == s for fb in group)
                    for s in ("negative", "neutral", "positive")
                },
                "flagged": sum(fb.flagged for fb in group),
            }
            for start, group in sorted(buckets.items())
        ],
    }


@pytest.mark.parametrize("interval", ["day", "week"])
def test_stats_equal_a_python_count_of_the_period(
    org: Organization, rows: list[Feedback], interval: str
) -> None:
    stats = feedback_stats(org=org, since=SINCE, until=UNTIL, interval=interval)

    assert stats == _expected(rows, interval)


def test_corrected_labels_take_precedence(org: Organization, rows: list[Feedback]) -> None:
    stats = feedback_stats(org=org, since=SINCE, until=UNTIL)

    assert stats["sentiment"] == {"negative": 3, "neutral": 2, "positive": 3}
    assert stats["category"] == {"wifi": 2, "canteen": 1, "grades": 1, "teaching": 1, "none": 3}
    assert stats["series"][0] == {
        "start": dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        "total": 2,
        "negative": 1,
        "neutral": 0,
        "positive": 1,
        "flagged": 0,
    }


def test_stats_exclude_other_org_and_other_periods(
    org: Organization, other_org: Organization, rows: list[Feedback]
) -> None:
    stats = feedback_stats(org=org, since=SINCE, until=UNTIL)
    theirs = feedback_stats(org=other_org, since=SINCE, until=UNTIL)

    assert stats["total"] == 8
    assert stats["flagged"] == 2
    assert "leak" not in stats["source"]
    assert theirs["total"] == 1
    assert theirs["source"] == {"leak": 1}


def test_stats_of_an_empty_period(org: Organization) -> None:
    stats = feedback_stats(org=org, since=SINCE, until=UNTIL, interval="week")

    assert stats == {
        "since": SINCE,
        "until": UNTIL,
        "interval": "week",
        "total": 0,
        "sentiment": {},
        "language": {},
        "category": {},
        "source": {},
        "flagged": 0,
        "series": [],
    }
