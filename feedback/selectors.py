"""Reads of feedback: filtered lists, statistics, usage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.db.models import CharField, Count, F, Func, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDay, TruncWeek
from django.utils import timezone

from feedback.models import Feedback, ImportJob, ReviewEvent, UsagePeriod
from tenants.models import Organization


@dataclass(frozen=True)
class FeedbackFilters:
    sentiment: str | None = None
    language: str | None = None
    category: str | None = None
    flagged: bool | None = None
    status: str | None = None
    source: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    q: str | None = None


def with_effective_labels(qs: QuerySet[Feedback]) -> QuerySet[Feedback]:
    """Human corrections win over predictions when filtering and counting."""
    return qs.annotate(
        effective_sentiment_value=Coalesce("corrected_sentiment", "sentiment"),
        effective_category_value=Coalesce("corrected_category", "category"),
    )


def feedback_list(
    *, org: Organization, filters: FeedbackFilters | None = None
) -> QuerySet[Feedback]:
    """The org's feedback matching `filters` (newest first)."""
    f = filters or FeedbackFilters()
    qs = with_effective_labels(Feedback.objects.for_org(org)).defer("search")
    if f.sentiment:
        qs = qs.filter(
            Q(corrected_sentiment=f.sentiment)
            | Q(corrected_sentiment__isnull=True, sentiment=f.sentiment)
        )
    if f.language:
        qs = qs.filter(language=f.language)
    if f.category:
        qs = qs.filter(
            Q(corrected_category=f.category)
            | Q(corrected_category__isnull=True, category=f.category)
        )
    if f.flagged is not None:
        qs = qs.filter(flagged=f.flagged)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.source:
        qs = qs.filter(source=f.source)
    if f.since:
        qs = qs.filter(received_at__gte=f.since)
    if f.until:
        qs = qs.filter(received_at__lt=f.until)
    if f.q:
        qs = qs.filter(search=SearchQuery(f.q, config="simple", search_type="websearch"))
    return qs.order_by("-received_at", "-id")


def feedback_stats(
    *, org: Organization, since: dt.datetime, until: dt.datetime, interval: str = "day"
) -> dict[str, Any]:
    """Counts by sentiment, language, category, source and flagged, in total and over time."""
    base = with_effective_labels(
        Feedback.objects.for_org(org).filter(received_at__gte=since, received_at__lt=until)
    )

    def by(field: str) -> dict[str, int]:
        rows = base.values_list(field).annotate(n=Count("id")).order_by()
        return {str(key) if key is not None else "none": n for key, n in rows}

    trunc = TruncWeek if interval == "week" else TruncDay
    series_rows = (
        base.annotate(bucket=trunc("received_at", tzinfo=dt.UTC))
        .values("bucket")
        .annotate(
            total=Count("id"),
            negative=Count("id", filter=Q(effective_sentiment_value="negative")),
            neutral=Count("id", filter=Q(effective_sentiment_value="neutral")),
            positive=Count("id", filter=Q(effective_sentiment_value="positive")),
            flagged=Count("id", filter=Q(flagged=True)),
        )
        .order_by("bucket")
    )
    total = base.count()
    return {
        "since": since,
        "until": until,
        "interval": interval,
        "total": total,
        "sentiment": by("effective_sentiment_value"),
        "language": by("language"),
        "category": by("effective_category_value"),
        "source": by("source"),
        "flagged": base.filter(flagged=True).count(),
        "series": [
            {
                "start": row["bucket"],
                "total": row["total"],
                "negative": row["negative"],
                "neutral": row["neutral"],
                "positive": row["positive"],
                "flagged": row["flagged"],
            }
            for row in series_rows
        ],
    }


def usage_get(*, org: Organization) -> dict[str, Any]:
    """This month's ingested items against the plan's quota, and the plan's request rate."""
    now = timezone.now()
    month = now.date().replace(day=1)
    items = (
        UsagePeriod.objects.for_org(org).filter(month=month).values_list("items", flat=True).first()
        or 0
    )
    limits = settings.PLAN_LIMITS[org.plan]
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return {
        "plan": org.plan,
        "period_start": month,
        "period_end": next_month,
        "items": items,
        "items_quota": limits["items_per_month"],
        "items_remaining": max(0, int(limits["items_per_month"]) - items),
        "request_rate": limits["rate"],
    }


# --- reads for the dashboard ----------------------------------------------------------------


def feedback_get(*, org: Organization, feedback_id: int) -> Feedback | None:
    """One of the org's records (with effective labels), or None when the org has no such id."""
    return feedback_list(org=org).select_related("reviewed_by").filter(pk=feedback_id).first()


def feedback_period_summary(
    *, org: Organization, since: dt.datetime, until: dt.datetime
) -> dict[str, int]:
    """Total, negative (after corrections) and flagged counts in a period, in one query."""
    base = with_effective_labels(
        Feedback.objects.for_org(org).filter(received_at__gte=since, received_at__lt=until)
    )
    return base.aggregate(
        total=Count("id"),
        negative=Count("id", filter=Q(effective_sentiment_value="negative")),
        flagged=Count("id", filter=Q(flagged=True)),
    )


def feedback_sources(*, org: Organization, limit: int = 50) -> list[str]:
    """The org's most used sources, most used first (for filter choices)."""
    rows = (
        Feedback.objects.for_org(org)
        .values_list("source")
        .annotate(n=Count("id"))
        .order_by("-n", "source")[:limit]
    )
    return [source for source, _ in rows]


def anomaly_reason_counts(*, org: Organization, status: str | None = None) -> list[tuple[str, int]]:
    """Flagged items per anomaly reason (an item with two reasons counts under both)."""
    qs = Feedback.objects.for_org(org).filter(flagged=True)
    if status:
        qs = qs.filter(status=status)
    rows = (
        qs.annotate(reason=Func(F("reasons"), function="unnest", output_field=CharField()))
        .values_list("reason")
        .annotate(n=Count("id"))
        .order_by("-n", "reason")
    )
    return [(str(reason), n) for reason, n in rows]


def review_event_list(*, org: Organization, feedback: Feedback) -> QuerySet[ReviewEvent]:
    """Who reviewed one of the org's records and what they changed, newest first."""
    return (
        ReviewEvent.objects.for_org(org)
        .filter(feedback=feedback)
        .select_related("actor")
        .order_by("-created_at", "-id")
    )


def import_job_list(*, org: Organization) -> QuerySet[ImportJob]:
    """The org's CSV imports, newest first (without their stored error lists)."""
    return ImportJob.objects.for_org(org).defer("errors").order_by("-created_at", "-id")


def import_job_get(*, org: Organization, job_id: int) -> ImportJob | None:
    """One of the org's imports, or None when the org has no such id."""
    return ImportJob.objects.for_org(org).filter(pk=job_id).first()
