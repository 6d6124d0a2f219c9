"""Writes: flushing in-process histograms, hourly rollups, retention and route alerts."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.utils.timezone import now as tz_now

from monitoring import selectors
from monitoring.histogram import percentile
from monitoring.models import (
    InferenceHour,
    InferenceMinute,
    RequestHour,
    RequestMinute,
    RouteAlert,
)
from monitoring.recorder import Aggregate, Batch, Recorder, recorder
from tenants.context import dangerously_all_orgs
from tenants.models import User

logger = logging.getLogger(__name__)

MINUTE_RETENTION = timedelta(days=14)
_Row = Sequence[Any]
HOUR_RETENTION_MONTHS = 13

# Each flush adds to what other workers already wrote for the same key and minute.
_UPSERT_REQUEST_MINUTE = """
INSERT INTO monitoring_requestminute AS t
    (minute, organization_id, route, method, status_class, api,
     count, buckets, duration_sum_ms, db_sum_ms, inference_sum_ms)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::bigint[], %s, %s, %s)
ON CONFLICT (organization_id, minute, route, method, status_class) DO UPDATE SET
    api = t.api OR EXCLUDED.api,
    count = t.count + EXCLUDED.count,
    buckets = monitoring_array_add(t.buckets, EXCLUDED.buckets),
    duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms,
    db_sum_ms = t.db_sum_ms + EXCLUDED.db_sum_ms,
    inference_sum_ms = t.inference_sum_ms + EXCLUDED.inference_sum_ms
"""
_UPSERT_REQUEST_TOTAL = """
INSERT INTO monitoring_requesttotal AS t
    (route, method, status_class, count, buckets, duration_sum_ms)
VALUES (%s, %s, %s, %s, %s::bigint[], %s)
ON CONFLICT (route, method, status_class) DO UPDATE SET
    count = t.count + EXCLUDED.count,
    buckets = monitoring_array_add(t.buckets, EXCLUDED.buckets),
    duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms
"""
_UPSERT_INFERENCE_MINUTE = """
INSERT INTO monitoring_inferenceminute AS t
    (minute, model, version, count, buckets, duration_sum_ms)
VALUES (%s, %s, %s, %s, %s::bigint[], %s)
ON CONFLICT (minute, model, version) DO UPDATE SET
    count = t.count + EXCLUDED.count,
    buckets = monitoring_array_add(t.buckets, EXCLUDED.buckets),
    duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms
"""
_UPSERT_INFERENCE_TOTAL = """
INSERT INTO monitoring_inferencetotal AS t (model, version, count, buckets, duration_sum_ms)
VALUES (%s, %s, %s, %s::bigint[], %s)
ON CONFLICT (model, version) DO UPDATE SET
    count = t.count + EXCLUDED.count,
    buckets = monitoring_array_add(t.buckets, EXCLUDED.buckets),
    duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms
"""

# Recomputing whole hours (replace, not add) makes the rollup idempotent and lets a rerun pick
# up minutes that were flushed late.
_ROLLUP_REQUESTS = """
INSERT INTO monitoring_requesthour AS t
    (hour, organization_id, route, method, status_class, api,
     count, buckets, duration_sum_ms, db_sum_ms, inference_sum_ms)
SELECT date_trunc('hour', minute, 'UTC'), organization_id, route, method, status_class,
       bool_or(api), sum(count), monitoring_array_sum(buckets),
       sum(duration_sum_ms), sum(db_sum_ms), sum(inference_sum_ms)
FROM monitoring_requestminute
WHERE minute >= %s AND minute < %s
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (organization_id, hour, route, method, status_class) DO UPDATE SET
    api = EXCLUDED.api,
    count = EXCLUDED.count,
    buckets = EXCLUDED.buckets,
    duration_sum_ms = EXCLUDED.duration_sum_ms,
    db_sum_ms = EXCLUDED.db_sum_ms,
    inference_sum_ms = EXCLUDED.inference_sum_ms
"""
_ROLLUP_INFERENCE = """
INSERT INTO monitoring_inferencehour AS t (hour, model, version, count, buckets, duration_sum_ms)
SELECT date_trunc('hour', minute, 'UTC'), model, version,
       sum(count), monitoring_array_sum(buckets), sum(duration_sum_ms)
FROM monitoring_inferenceminute
WHERE minute >= %s AND minute < %s
GROUP BY 1, 2, 3
ON CONFLICT (hour, model, version) DO UPDATE SET
    count = EXCLUDED.count,
    buckets = EXCLUDED.buckets,
    duration_sum_ms = EXCLUDED.duration_sum_ms
"""


def _minute_start(epoch_minute: int) -> datetime:
    return datetime.fromtimestamp(epoch_minute * 60, tz=UTC)


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _months_before(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(index, 12)
    # Day 28 exists in every month; being up to three days generous with retention is fine.
    return moment.replace(year=year, month=month + 1, day=min(moment.day, 28))


def _batch_rows(batch: Batch) -> tuple[list[_Row], list[_Row], list[_Row], list[_Row]]:
    totals: dict[tuple[str, str, str], Aggregate] = defaultdict(Aggregate)
    minute_rows: list[_Row] = []
    # Sorted so that workers flushing the same keys lock rows in the same order (no deadlocks).
    for key in sorted(batch.requests, key=lambda k: (k[0], k[1] or 0, k[2], k[3], k[4])):
        agg = batch.requests[key]
        minute, org_id, route, method, status_class = key
        minute_rows.append(
            (
                _minute_start(minute),
                org_id,
                route,
                method,
                status_class,
                agg.api,
                agg.count,
                agg.counts,
                agg.duration_sum_ms,
                agg.db_sum_ms,
                agg.inference_sum_ms,
            )
        )
        totals[(route, method, status_class)].merge(agg)
    total_rows: list[_Row] = [
        (*key, agg.count, agg.counts, agg.duration_sum_ms) for key, agg in sorted(totals.items())
    ]
    inference_totals: dict[tuple[str, str], Aggregate] = defaultdict(Aggregate)
    inference_rows: list[_Row] = []
    for ikey in sorted(batch.inference):
        agg = batch.inference[ikey]
        minute, model, version = ikey
        inference_rows.append(
            (_minute_start(minute), model, version, agg.count, agg.counts, agg.duration_sum_ms)
        )
        inference_totals[(model, version)].merge(agg)
    inference_total_rows: list[_Row] = [
        (*key, agg.count, agg.counts, agg.duration_sum_ms)
        for key, agg in sorted(inference_totals.items())
    ]
    return minute_rows, total_rows, inference_rows, inference_total_rows


def monitoring_flush(*, recorder: Recorder = recorder) -> int:
    """Add this process's buffered minutes to PostgreSQL in one transaction; returns the number
    of keys written. On failure the batch goes back into the buffer and the error propagates."""
    batch = recorder.drain()
    if not batch:
        return 0
    minute_rows, total_rows, inference_rows, inference_total_rows = _batch_rows(batch)
    try:
        with (
            dangerously_all_orgs("one flush carries every org's request minutes"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            for sql, rows in (
                (_UPSERT_REQUEST_MINUTE, minute_rows),
                (_UPSERT_REQUEST_TOTAL, total_rows),
                (_UPSERT_INFERENCE_MINUTE, inference_rows),
                (_UPSERT_INFERENCE_TOTAL, inference_total_rows),
            ):
                if rows:
                    cursor.executemany(sql, rows)
    except Exception:
        recorder.restore(batch)
        raise
    return len(batch)


def monitoring_rollup(*, now: datetime | None = None, hours: int = 3) -> int:
    """Recompute the hourly rollups of the last `hours` complete hours from minute rows;
    idempotent. Returns the number of hourly rows written."""
    end = _floor_hour(now or tz_now())
    start = end - timedelta(hours=hours)
    with (
        dangerously_all_orgs("rollups cover every org's minutes"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(_ROLLUP_REQUESTS, [start, end])
        written = int(cursor.rowcount)
        cursor.execute(_ROLLUP_INFERENCE, [start, end])
        written += int(cursor.rowcount)
    return written


def monitoring_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete minute rows older than 14 days and hourly rows and resolved alerts older than
    13 months; returns rows deleted per table."""
    moment = now or tz_now()
    minute_cutoff = moment - MINUTE_RETENTION
    hour_cutoff = _months_before(moment, HOUR_RETENTION_MONTHS)
    expired = {
        "request_minutes": RequestMinute.objects.filter(minute__lt=minute_cutoff),
        "inference_minutes": InferenceMinute.objects.filter(minute__lt=minute_cutoff),
        "request_hours": RequestHour.objects.filter(hour__lt=hour_cutoff),
        "inference_hours": InferenceHour.objects.filter(hour__lt=hour_cutoff),
        "alerts": RouteAlert.objects.filter(resolved_at__lt=hour_cutoff),
    }
    with dangerously_all_orgs("retention applies to every org's rows"):
        return {table: rows.delete()[0] for table, rows in expired.items()}


def _alert_notify(*, alert: RouteAlert) -> None:
    recipients = list(
        User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True)
    )
    if recipients:
        send_mail(
            subject=f"[Puna] Slow route: {alert.method} {alert.route} p95 {alert.p95_ms:.0f} ms",
            message=(
                f"The p95 latency of {alert.method} {alert.route} has stayed above "
                f"{alert.threshold_ms:.0f} ms for {settings.MONITORING_ALERT_MINUTES} minutes "
                f"(latest minute: {alert.p95_ms:.0f} ms) since {alert.started_at:%Y-%m-%d %H:%M} "
                f"UTC.\n\nThe operators' monitoring page shows the details: /ops/monitoring/\n"
            ),
            from_email=None,
            recipient_list=recipients,
        )
    alert.notified_at = tz_now()
    alert.save(update_fields=["notified_at"])


def alert_evaluate(*, now: datetime | None = None) -> list[RouteAlert]:
    """Open an episode (and email staff once) for each route whose p95 exceeded the threshold
    in each of the last MONITORING_ALERT_MINUTES settled minutes; resolve open episodes whose
    route no longer does. Returns the episodes opened."""
    moment = now or tz_now()
    threshold: float = settings.MONITORING_P95_ALERT_MS
    minutes: int = settings.MONITORING_ALERT_MINUTES
    min_requests: int = settings.MONITORING_ALERT_MIN_REQUESTS
    # A minute is settled once every worker has flushed it (one flush interval, plus slack).
    settled = moment - timedelta(seconds=settings.MONITORING_FLUSH_SECONDS + 5)
    end = _floor_minute(settled)
    start = end - timedelta(minutes=minutes)
    latest = end - timedelta(minutes=1)

    breaching: dict[tuple[str, str], float] = {}
    with dangerously_all_orgs("a route's latency sums every org's requests"):
        histograms = selectors.route_minute_histograms(start=start, end=end)
    for route_key, by_minute in histograms.items():
        p95s = {
            minute: percentile(counts, 0.95) or 0.0
            for minute, (count, counts) in by_minute.items()
            if count >= min_requests
        }
        if len(p95s) == minutes and all(p95 > threshold for p95 in p95s.values()):
            breaching[route_key] = p95s[latest]

    open_alerts = {(a.route, a.method): a for a in RouteAlert.objects.filter(resolved_at=None)}
    for route_key, alert in open_alerts.items():
        if route_key not in breaching:
            # One good (or quiet) minute ends the episode; a new one needs a full streak again.
            alert.resolved_at = moment
            alert.save(update_fields=["resolved_at"])

    opened: list[RouteAlert] = []
    for (route, method), p95 in sorted(breaching.items()):
        existing = open_alerts.get((route, method))
        if existing is None:
            try:
                with transaction.atomic():
                    alert = RouteAlert.objects.create(
                        route=route,
                        method=method,
                        threshold_ms=threshold,
                        started_at=start,
                        last_breach_at=latest,
                        p95_ms=p95,
                    )
            except IntegrityError:
                continue  # a concurrent evaluation opened it and will notify
            opened.append(alert)
        else:
            alert = existing
            alert.last_breach_at = latest
            alert.p95_ms = p95
            alert.save(update_fields=["last_breach_at", "p95_ms"])
        if alert.notified_at is None:
            # Also retries a notification whose mail failed on an earlier run.
            _alert_notify(alert=alert)
    return opened
