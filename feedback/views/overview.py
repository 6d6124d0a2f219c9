"""The org's home page: KPIs and charts for a period, or how to send a first feedback."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from feedback import selectors
from feedback.forms import PeriodForm, org_tz
from feedback.models import Language, ReviewStatus
from tenants import selectors as tenant_selectors
from tenants.decorators import OrgRequest, org_view

# A chart of more buckets than this is unreadable on a phone: longer periods go by week.
MAX_DAILY_BUCKETS = 92
TOP_N = 8
LATEST_FLAGGED = 5
VOLUME_COLUMNS = ("labels", "negative", "neutral", "positive", "total")


def _percent_change(current: int, previous: int) -> float | None:
    return None if previous == 0 else (current - previous) * 100.0 / previous


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part * 100.0 / whole


def _bucket_starts(since: dt.datetime, until: dt.datetime, interval: str) -> list[dt.datetime]:
    """Every bucket of the period, so days without feedback show as zero, not as a gap."""
    start = since.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    step = dt.timedelta(days=1)
    if interval == "week":
        start -= dt.timedelta(days=start.weekday())  # PostgreSQL's weeks start on Monday
        step = dt.timedelta(days=7)
    starts = []
    while start < until:
        starts.append(start)
        start += step
    return starts


def _series(stats: dict[str, Any]) -> dict[str, list[Any]]:
    by_start = {row["start"]: row for row in stats["series"]}
    starts = _bucket_starts(stats["since"], stats["until"], stats["interval"])
    rows = [by_start.get(start, {}) for start in starts]
    fmt = "%b %d" if stats["interval"] == "day" else "wk %b %d"
    return {
        "labels": [start.strftime(fmt) for start in starts],
        **{
            key: [row.get(key, 0) for row in rows]
            for key in ("negative", "neutral", "positive", "flagged", "total")
        },
    }


def _top(counts: dict[str, int], names: dict[str, str] | None = None) -> dict[str, list[Any]]:
    """The largest TOP_N groups, the rest summed as "Other"."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    head, tail = ordered[:TOP_N], ordered[TOP_N:]
    names = names or {}
    labels = [names.get(key, key) for key, _ in head]
    values = [n for _, n in head]
    if tail:
        labels.append("Other")
        values.append(sum(n for _, n in tail))
    return {"labels": labels, "values": values}


@org_view("feedback")
def overview(request: OrgRequest) -> HttpResponse:
    org = request.org
    form = PeriodForm(request.GET or None)
    since, until = form.window(now=timezone.now(), tz=org_tz(org.timezone))
    span = until - since
    interval = "week" if span > dt.timedelta(days=MAX_DAILY_BUCKETS) else "day"
    stats = selectors.feedback_stats(org=org, since=since, until=until, interval=interval)
    context: dict[str, Any] = {
        "form": form,
        # An invalid choice falls back to the default, as the window does.
        "period": (form.cleaned_data.get("period") if form.is_valid() else None) or "30",
        "since": since,
        "until": until,
        "stats": stats,
    }
    if stats["total"] == 0 and not selectors.feedback_list(org=org).exists():
        # A new org: show how to send the first feedback instead of empty charts.
        context["empty"] = True
        context["api_key"] = (
            tenant_selectors.api_key_list(org=org).filter(revoked_at__isnull=True).first()
        )
        return render(request, "feedback/overview.html", context)

    previous = selectors.feedback_period_summary(org=org, since=since - span, until=since)
    negative = stats["sentiment"].get("negative", 0)
    negative_share = _share(negative, stats["total"])
    previous_share = _share(previous["negative"], previous["total"])
    languages = dict(Language.choices)
    volume = _series(stats)
    charts = {
        "volume": volume,
        "language": _top(stats["language"], languages),
        "category": _top(stats["category"], {"none": "Uncategorised"}),
        "source": _top(stats["source"]),
    }
    context.update(
        {
            "kpis": {
                "volume": stats["total"],
                "volume_change": _percent_change(stats["total"], previous["total"]),
                "negative_share": negative_share,
                "negative_change": None
                if negative_share is None or previous_share is None
                else negative_share - previous_share,
                "flagged": stats["flagged"],
                "flagged_previous": previous["flagged"],
            },
            "charts": charts,
            # The same numbers as tables: for screen readers, and for browsers without JS.
            "tables": {
                "volume": list(zip(*(volume[k] for k in VOLUME_COLUMNS), strict=True)),
                **{
                    key: list(zip(charts[key]["labels"], charts[key]["values"], strict=True))
                    for key in ("language", "category", "source")
                },
            },
            "latest_flagged": selectors.feedback_list(
                org=org, filters=selectors.FeedbackFilters(flagged=True, status=ReviewStatus.NEW)
            )[:LATEST_FLAGGED],
        }
    )
    return render(request, "feedback/overview.html", context)
