"""Reads for reports and alerts: the report's stats snapshot, detector counts, lists."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Length, TruncDate
from django.utils import timezone

from feedback.models import Feedback, Sentiment
from feedback.selectors import FeedbackFilters, feedback_list
from reports.detectors import DEFAULT_RULES
from reports.models import (
    AlertEvent,
    AlertKind,
    AlertRule,
    Report,
    ReportSchedule,
    WebhookDelivery,
    WebhookEndpoint,
)
from reports.schedule import next_due
from tenants.models import Membership, Organization

HIGHLIGHTS_PER_SENTIMENT = 3
RISING_TERMS = 10
# Term counting reads at most this many comments per period: enough for a trend, bounded work.
TERM_SAMPLE = 5000
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
# Function words of English, Tagalog and Cebuano: frequent everywhere, never "rising".
_STOPWORD_TEXT = """
the and for are but not you your with this that have has was were from they them their our
all can will just very too also more most some any about into out what when who how why
which there here been being its it's i'm don't can't ang mga ng sa na at ay si ni kay ko mo
niya namin natin nila siya ako ikaw kami tayo sila ito iyan iyon dito diyan doon lang din
rin pa po opo hindi wala may mayroon para kung pero kasi dahil naman nga ba yung yun ung
talaga sobrang ganun ganito kaayo kaayo ug og nga sa ni si kay ang ako ikaw siya kami kita
sila dili wala naa ani kana kini mao pod pud bitaw lagi jud gyud man unta
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def schedule_list(*, org: Organization) -> QuerySet[ReportSchedule]:
    """The org's report schedules, newest first, with their recipients."""
    return (
        ReportSchedule.objects.for_org(org)
        .prefetch_related("recipient_members__user")
        .order_by("-created_at", "-id")
    )


def schedule_next_due(*, schedule: ReportSchedule) -> dt.datetime | None:
    """When the schedule next sends (None when disabled or the org's zone is unknown)."""
    if not schedule.enabled:
        return None
    try:
        tz = ZoneInfo(schedule.organization.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return next_due(schedule.rule(), tz, timezone.now()).due_at


def report_list(*, org: Organization, schedule_id: int | None = None) -> QuerySet[Report]:
    """The org's reports, newest period first; the heavy file columns are not loaded."""
    qs = Report.objects.for_org(org).defer("html", "csv", "pdf", "chart_png", "stats")
    if schedule_id is not None:
        qs = qs.filter(schedule_id=schedule_id)
    return qs.order_by("-period_start", "-id")


def webhook_list(*, org: Organization) -> QuerySet[WebhookEndpoint]:
    """The org's webhook endpoints, newest first."""
    return WebhookEndpoint.objects.for_org(org).order_by("-created_at", "-id")


def delivery_list(
    *, org: Organization, endpoint_id: int | None = None
) -> QuerySet[WebhookDelivery]:
    """The org's webhook deliveries (the delivery log), newest first."""
    qs = WebhookDelivery.objects.for_org(org).select_related("endpoint")
    if endpoint_id is not None:
        qs = qs.filter(endpoint_id=endpoint_id)
    return qs.order_by("-created_at", "-id")


def alert_event_list(*, org: Organization) -> QuerySet[AlertEvent]:
    """Alerts that fired for the org, newest first."""
    return AlertEvent.objects.for_org(org).order_by("-created_at", "-id")


def schedule_recipients(*, schedule: ReportSchedule) -> list[str]:
    """Email addresses a schedule's report goes to: current members first, then outsiders."""
    # Filtered by org again: a membership moved or removed since no longer receives it.
    member_emails = Membership.objects.filter(
        organization_id=schedule.organization_id,
        pk__in=schedule.recipient_members.values("pk"),
        user__is_active=True,
    ).values_list("user__email", flat=True)
    seen: dict[str, None] = {}
    for email in [*member_emails, *schedule.recipient_emails]:
        seen.setdefault(email.lower(), None)
    return list(seen)


def alert_recipients(*, org: Organization, rule: AlertRule | None) -> list[str]:
    """Owners and admins of the org, plus the rule's extra addresses."""
    emails = Membership.objects.filter(
        organization=org, role__in=["owner", "admin"], user__is_active=True
    ).values_list("user__email", flat=True)
    seen: dict[str, None] = {}
    for email in [*emails, *(rule.notify_emails if rule else [])]:
        seen.setdefault(email.lower(), None)
    return list(seen)


def alert_rules_for(*, org: Organization) -> dict[str, AlertRule]:
    """The org's saved rules by kind; kinds without a row use `AlertRule`'s defaults."""
    saved = {rule.kind: rule for rule in AlertRule.objects.for_org(org)}
    return {
        kind: saved.get(kind) or AlertRule(organization=org, kind=kind, **DEFAULT_RULES[kind])
        for kind in AlertKind
    }


# --- the report snapshot ------------------------------------------------------------------------


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 4) if total else 0.0 for k, v in counts.items()}


def _sentiment_counts(qs: QuerySet[Feedback]) -> dict[str, int]:
    row = qs.order_by().aggregate(
        **{s: Count("id", filter=Q(effective_sentiment_value=s)) for s in Sentiment.values}
    )
    return {s: int(row[s]) for s in Sentiment.values}


def _by(qs: QuerySet[Feedback], field: str) -> dict[str, int]:
    rows = qs.order_by().values_list(field).annotate(n=Count("id")).order_by("-n")
    return {str(key) if key not in (None, "") else "none": n for key, n in rows}


def _flagged_by_reason(ids_qs: QuerySet[Feedback]) -> dict[str, int]:
    # Reasons are an array column; unnest is the direct way to count its elements.
    sql, params = ids_qs.filter(flagged=True).order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reason, count(*) FROM feedback_feedback f, unnest(f.reasons) AS reason "  # noqa: S608  # nosec B608 # sql is Django's own, values are params
            f"WHERE f.id IN ({sql}) GROUP BY reason ORDER BY count(*) DESC, reason",
            params,
        )
        return {str(reason): int(n) for reason, n in cursor.fetchall()}


def _highlights(qs: QuerySet[Feedback], sentiment: str) -> list[dict[str, Any]]:
    rows = (
        qs.filter(Q(effective_sentiment_value=sentiment), flagged=False)
        .annotate(length=Length("text"))
        .filter(length__gte=15, length__lte=400)
        .order_by(F(f"sentiment_scores__{sentiment}").desc(nulls_last=True), "-received_at")
        .values("text", "source", "received_at")[:HIGHLIGHTS_PER_SENTIMENT]
    )
    return [
        {"text": r["text"], "source": r["source"], "received_at": r["received_at"].isoformat()}
        for r in rows
    ]


def _terms(qs: QuerySet[Feedback]) -> tuple[Counter[str], int]:
    texts = list(qs.filter(flagged=False).values_list("text", flat=True)[:TERM_SAMPLE])
    counts: Counter[str] = Counter()
    for text in texts:
        # Documents, not occurrences: one comment repeating a word is not a trend.
        counts.update({w for w in _WORD.findall(text.lower()) if w not in STOPWORDS})
    return counts, len(texts)


def rising_terms(current: QuerySet[Feedback], previous: QuerySet[Feedback]) -> list[dict[str, Any]]:
    """Words used by a clearly larger share of comments than in the previous period."""
    now_counts, now_docs = _terms(current)
    before_counts, before_docs = _terms(previous)
    rising: list[dict[str, Any]] = []
    for term, n in now_counts.items():
        if n < 3:
            continue
        rate = n / now_docs
        before_rate = before_counts.get(term, 0) / before_docs if before_docs else 0.0
        if rate >= 2 * before_rate:
            expected = before_rate * now_docs
            rising.append(
                {
                    "term": term,
                    "count": n,
                    "previous": before_counts.get(term, 0),
                    "lift": n - expected,
                }
            )
    rising.sort(key=lambda r: (-r["lift"], r["term"]))
    return [{k: v for k, v in r.items() if k != "lift"} for r in rising[:RISING_TERMS]]


def report_snapshot(
    *,
    org: Organization,
    since: dt.datetime,
    until: dt.datetime,
    source: str = "",
    category: str = "",
    title: str = "",
) -> dict[str, Any]:
    """Everything a report shows about [since, until), JSON-ready, compared with the period
    of the same length just before it."""
    tz = ZoneInfo(org.timezone)
    filters = {"source": source or None, "category": category or None}
    current = feedback_list(
        org=org,
        filters=FeedbackFilters(
            since=since, until=until, source=source or None, category=category or None
        ),
    )
    previous = feedback_list(
        org=org,
        filters=FeedbackFilters(
            since=since - (until - since),
            until=since,
            source=source or None,
            category=category or None,
        ),
    )
    total = current.count()
    previous_total = previous.count()
    sentiment = _sentiment_counts(current)
    previous_sentiment = _sentiment_counts(previous)

    by_day: dict[dt.date, dict[str, Any]] = {
        row["day"]: dict(row)
        for row in current.order_by()
        .annotate(day=TruncDate("received_at", tzinfo=tz))
        .values("day")
        .annotate(
            total=Count("id"),
            negative=Count("id", filter=Q(effective_sentiment_value="negative")),
            neutral=Count("id", filter=Q(effective_sentiment_value="neutral")),
            positive=Count("id", filter=Q(effective_sentiment_value="positive")),
        )
    }
    trend: list[dict[str, Any]] = []
    day = since.astimezone(tz).date()
    last = (until - dt.timedelta(microseconds=1)).astimezone(tz).date()
    while day <= last:
        row = by_day.get(day, {})
        trend.append(
            {
                "day": day.isoformat(),
                "total": row.get("total", 0),
                **{s: row.get(s, 0) for s in Sentiment.values},
            }
        )
        day += dt.timedelta(days=1)

    change = None if previous_total == 0 else round((total - previous_total) / previous_total, 4)
    return {
        "org": org.name,
        "title": title,
        "timezone": org.timezone,
        "period_start": since.isoformat(),
        "period_end": until.isoformat(),
        "period_label": _period_label(since, until, tz),
        "filters": {k: v for k, v in filters.items() if v},
        "total": total,
        "previous_total": previous_total,
        "change": change,
        "sentiment": sentiment,
        "sentiment_share": _shares(sentiment),
        "previous_sentiment_share": _shares(previous_sentiment),
        "trend": trend,
        "language": _by(current, "language"),
        "category": _by(current, "effective_category_value"),
        "source": _by(current, "source"),
        "flagged": current.filter(flagged=True).count(),
        "flagged_by_reason": _flagged_by_reason(current),
        "highlights": {
            "positive": _highlights(current, Sentiment.POSITIVE),
            "negative": _highlights(current, Sentiment.NEGATIVE),
        },
        "rising_terms": rising_terms(current, previous),
    }


def _period_label(since: dt.datetime, until: dt.datetime, tz: ZoneInfo) -> str:
    first = since.astimezone(tz)
    last = (until - dt.timedelta(microseconds=1)).astimezone(tz)
    if first.date() == last.date():
        return f"{first:%a %d %b %Y}"
    return f"{first:%a %d %b %Y} to {last:%a %d %b %Y}"


# --- detector inputs ------------------------------------------------------------------------------


def window_counts(
    *, org: Organization, end: dt.datetime, window: dt.timedelta, baseline_days: int
) -> dict[str, Any]:
    """Items and negatives in [end - window, end), and in the same window of each of the
    `baseline_days` days before: one query, so schools' daily rhythm is the baseline."""
    start = end - window
    qs = with_effective(org).filter(
        received_at__gte=start - dt.timedelta(days=baseline_days), received_at__lt=end
    )
    aggregates: dict[str, Any] = {}
    for day in range(baseline_days + 1):
        shift = dt.timedelta(days=day)
        in_window = Q(received_at__gte=start - shift, received_at__lt=end - shift)
        aggregates[f"t{day}"] = Count("id", filter=in_window)
        aggregates[f"n{day}"] = Count(
            "id", filter=in_window & Q(effective_sentiment_value="negative")
        )
    row = qs.aggregate(**aggregates)
    return {
        "total": row["t0"],
        "negative": row["n0"],
        "baseline_totals": [row[f"t{d}"] for d in range(1, baseline_days + 1)],
        "baseline_negatives": [row[f"n{d}"] for d in range(1, baseline_days + 1)],
    }


def flagged_groups(*, org: Organization, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """Flagged items in [start, end) per source and per author reference ("source:x")."""
    qs = Feedback.objects.for_org(org).filter(
        flagged=True, received_at__gte=start, received_at__lt=end
    )
    groups: dict[str, int] = {}
    for source, n in qs.order_by().values_list("source").annotate(n=Count("id")):
        groups[f"source:{source}"] = n
    for author, n in (
        qs.exclude(author_ref="").order_by().values_list("author_ref").annotate(n=Count("id"))
    ):
        groups[f"author:{author}"[:120]] = n
    return groups


def flagged_feedback_since(*, org: Organization, since: dt.datetime, limit: int) -> list[Feedback]:
    """Flagged feedback received since `since`, oldest first (for `feedback.flagged` hooks)."""
    return list(
        Feedback.objects.for_org(org)
        .filter(flagged=True, received_at__gte=since)
        .defer("search")
        .order_by("received_at", "id")[:limit]
    )


def has_recent_feedback(*, org: Organization, since: dt.datetime) -> bool:
    """Whether the org received anything since `since` (detectors skip idle orgs)."""
    return Feedback.objects.for_org(org).filter(received_at__gte=since).exists()


def with_effective(org: Organization) -> QuerySet[Feedback]:
    return feedback_list(org=org).order_by()
