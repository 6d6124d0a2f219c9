"""Reads of feedback: filtered lists, statistics, usage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.db.models import CharField, Count, F, Func, Q, QuerySet
from django.db.models.functions import Coalesce
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


# GROUPING(...) of each grouping set in STATS_SQL (a bit is 1 where a column is rolled up).
_STATS_SETS = {15: "sentiment", 23: "language", 27: "category", 29: "source", 30: "series"}
# The bucket expressions match the statistics of migration 0002 exactly, so the planner
# knows how few buckets a period has; only these literals are ever put into the SQL.
_BUCKETS = {
    "day": "date_trunc('day', received_at, 'UTC')",
    "week": "date_trunc('week', received_at, 'UTC')",
}
STATS_SQL = """
SELECT GROUPING(sentiment, language, category, source, bucket) AS grouping_set,
       -- Within a set the other columns are rolled up to NULL: this is the set's own value.
       COALESCE(sentiment, language, category, source) AS key, bucket,
       count(*) AS total,
       count(*) FILTER (WHERE sentiment = 'negative') AS negative,
       count(*) FILTER (WHERE sentiment = 'neutral') AS neutral,
       count(*) FILTER (WHERE sentiment = 'positive') AS positive,
       count(*) FILTER (WHERE flagged) AS flagged
FROM (
    SELECT COALESCE(corrected_sentiment, sentiment) AS sentiment, language,
           COALESCE(corrected_category, category) AS category, source, flagged,
           {bucket} AS bucket
    FROM feedback_feedback
    WHERE organization_id = %(org_id)s AND received_at >= %(since)s AND received_at < %(until)s
) AS period
GROUP BY GROUPING SETS ((sentiment), (language), (category), (source), (bucket), ())
ORDER BY grouping_set, bucket
"""


def feedback_stats(
    *, org: Organization, since: dt.datetime, until: dt.datetime, interval: str = "day"
) -> dict[str, Any]:
    """Counts by sentiment, language, category, source and flagged, in total and over time.

    One scan of the period (index-only, see migration 0002) feeds every grouping at once;
    corrected labels win over predicted ones, as in `with_effective_labels`.
    """
    sql = STATS_SQL.format(bucket=_BUCKETS["week" if interval == "week" else "day"])
    with connection.cursor() as cursor:
        cursor.execute(sql, {"org_id": org.pk, "since": since, "until": until})
        rows = cursor.fetchall()
    groups: dict[str, dict[str, int]] = {name: {} for name in _STATS_SETS.values()}
    series: list[dict[str, Any]] = []
    total = flagged = 0
    # One row per group (a few dozen), never per feedback.
    for grouping_set, key, bucket, n, negative, neutral, positive, n_flagged in rows:
        name = _STATS_SETS.get(grouping_set)
        if name == "series":
            series.append(
                {
                    "start": bucket.astimezone(dt.UTC),
                    "total": n,
                    "negative": negative,
                    "neutral": neutral,
                    "positive": positive,
                    "flagged": n_flagged,
                }
            )
        elif name is not None:
            groups[name][str(key) if key is not None else "none"] = n
        else:
            total, flagged = n, n_flagged
    return {
        "since": since,
        "until": until,
        "interval": interval,
        "total": total,
        "sentiment": groups["sentiment"],
        "language": groups["language"],
        "category": groups["category"],
        "source": groups["source"],
        "flagged": flagged,
        "series": series,
    }


def usage_get(*, org: Organization) -> dict[str, Any]:
    """This month's ingested items against the plan's quota, its API requests so far (from the
    monitoring histograms, up to a flush interval behind), and the plan's request rate."""
    from monitoring.selectors import org_api_request_count

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
        "requests": org_api_request_count(
            org=org, since=dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
        ),
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
