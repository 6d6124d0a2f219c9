"""Reads: per-endpoint traffic for an org or for everyone, inference latency, job backlog,
alerts, and the all-time totals behind /metrics. Percentiles come from summed buckets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import F, Sum
from django.utils.timezone import now as tz_now

from monitoring.histogram import empty_counts, percentile
from monitoring.models import (
    InferenceTotal,
    RequestHour,
    RequestMinute,
    RequestTotal,
    RouteAlert,
)
from tenants.models import Organization

WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
DEFAULT_WINDOW = "1h"


@dataclass(frozen=True, slots=True)
class Span:
    """A time window split into the part served by hourly rollups and the part by minutes."""

    start: datetime
    boundary: datetime  # hours cover [start, boundary), minutes cover [boundary, now]
    minutes: float  # the window's length, for per-minute rates


@dataclass(frozen=True, slots=True)
class EndpointStats:
    route: str
    method: str
    requests: int
    per_minute: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float
    server_error_rate: float  # 5xx / all
    client_error_rate: float  # 4xx / all

    @property
    def server_error_percent(self) -> float:
        return self.server_error_rate * 100.0

    @property
    def client_error_percent(self) -> float:
        return self.client_error_rate * 100.0


@dataclass(frozen=True, slots=True)
class InferenceStats:
    model: str
    version: str
    calls: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float


@dataclass(frozen=True, slots=True)
class JobCount:
    queue: str
    status: str
    count: int


def window_span(*, window: str, now: datetime | None = None) -> Span:
    """Where a window's data lives: minute rows for the last hour; beyond that, hourly rollups
    up to the last rolled-up hour and minute rows after it (so a late rollup loses nothing)."""
    moment = now or tz_now()
    length = WINDOWS[window]
    if length <= timedelta(hours=1):
        start = moment - length
        return Span(start=start, boundary=start, minutes=length.total_seconds() / 60)
    # Longer windows start on an hour so they can be served from whole hourly rows.
    start = (moment - length).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    latest = (
        RequestHour.objects.filter(hour__gte=start).order_by("-hour").values_list("hour", flat=True)
    ).first()
    boundary = start if latest is None else latest + timedelta(hours=1)
    return Span(start=start, boundary=boundary, minutes=(moment - start).total_seconds() / 60)


# Summing arrays row by row in SQL (monitoring_array_sum) costs ~50 µs a row; exploding only
# the non-zero cells and grouping them is several times faster on wide windows, because a
# minute row of one route has only a handful of non-zero buckets.
_CELLS = """
WITH rows AS MATERIALIZED ({rows})
SELECT {keys}, u.i, sum(u.v)
FROM rows, unnest(rows.buckets) WITH ORDINALITY AS u(v, i)
WHERE u.v <> 0
GROUP BY {keys}, u.i
"""

# Fragments below are fixed strings chosen in code, never user input.
_REQUEST_ROWS = """
    SELECT route, method, status_class, count, buckets, duration_sum_ms
    FROM monitoring_requesthour WHERE hour >= %(start)s AND hour < %(boundary)s {where}
    UNION ALL
    SELECT route, method, status_class, count, buckets, duration_sum_ms
    FROM monitoring_requestminute WHERE minute >= %(boundary)s {where}
"""
_REQUEST_TOTALS = """
WITH rows AS ({rows})
SELECT route, method, sum(count),
       coalesce(sum(count) FILTER (WHERE status_class = '5xx'), 0),
       coalesce(sum(count) FILTER (WHERE status_class = '4xx'), 0),
       sum(duration_sum_ms)
FROM rows GROUP BY route, method
"""
_ORG_API_ONLY = "AND organization_id = %(org_id)s AND api"
_INFERENCE_ROWS = """
    SELECT model, version, count, buckets, duration_sum_ms
    FROM monitoring_inferencehour WHERE hour >= %(start)s AND hour < %(boundary)s
    UNION ALL
    SELECT model, version, count, buckets, duration_sum_ms
    FROM monitoring_inferenceminute WHERE minute >= %(boundary)s
"""
_MINUTE_ROWS = """
    SELECT route, method, minute, count, buckets FROM monitoring_requestminute
    WHERE minute >= %(start)s AND minute < %(end)s
"""


def _histograms(
    *, rows: str, keys: str, params: dict[str, Any]
) -> dict[tuple[Any, ...], list[int]]:
    """Bucket counts summed per group of `keys` over the rows the `rows` query selects."""
    result: dict[tuple[Any, ...], list[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_CELLS.format(rows=rows, keys=keys), params)
        for *key, index, value in cursor.fetchall():
            counts = result.setdefault(tuple(key), empty_counts())
            counts[index - 1] = int(value)  # SQL ordinals start at 1
    return result


def _endpoint_stats(*, span: Span, where: str, params: dict[str, Any]) -> list[EndpointStats]:
    rows = _REQUEST_ROWS.format(where=where)
    params = {"start": span.start, "boundary": span.boundary, **params}
    histograms = _histograms(rows=rows, keys="route, method", params=params)
    with connection.cursor() as cursor:
        cursor.execute(_REQUEST_TOTALS.format(rows=rows), params)
        totals = cursor.fetchall()
    stats = []
    for route, method, total, server_errors, client_errors, duration_sum in totals:
        requests = int(total)
        buckets = histograms.get((route, method), empty_counts())
        stats.append(
            EndpointStats(
                route=route,
                method=method,
                requests=requests,
                per_minute=requests / span.minutes if span.minutes else 0.0,
                p50_ms=percentile(buckets, 0.50),
                p95_ms=percentile(buckets, 0.95),
                p99_ms=percentile(buckets, 0.99),
                mean_ms=duration_sum / requests if requests else 0.0,
                server_error_rate=int(server_errors) / requests if requests else 0.0,
                client_error_rate=int(client_errors) / requests if requests else 0.0,
            )
        )
    return sorted(stats, key=lambda s: (-s.requests, s.route, s.method))


def org_endpoint_stats(*, org: Organization, window: str) -> list[EndpointStats]:
    """The org's own API traffic per endpoint over the window, busiest first."""
    return _endpoint_stats(
        span=window_span(window=window), where=_ORG_API_ONLY, params={"org_id": org.pk}
    )


def route_stats(*, window: str) -> list[EndpointStats]:
    """Every route's traffic across all orgs (and none) over the window, busiest first.
    Operators only."""
    return _endpoint_stats(span=window_span(window=window), where="", params={})


def inference_stats(*, window: str) -> list[InferenceStats]:
    """Inference latency per model version over the window, slowest p95 first."""
    span = window_span(window=window)
    params = {"start": span.start, "boundary": span.boundary}
    histograms = _histograms(rows=_INFERENCE_ROWS, keys="model, version", params=params)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH rows AS ({_INFERENCE_ROWS}) "  # noqa: S608  # nosec B608 # a fixed fragment of ours
            "SELECT model, version, sum(count), sum(duration_sum_ms) FROM rows "
            "GROUP BY model, version",
            params,
        )
        totals = cursor.fetchall()
    stats = []
    for model, version, total, duration_sum in totals:
        calls = int(total)
        buckets = histograms.get((model, version), empty_counts())
        stats.append(
            InferenceStats(
                model=model,
                version=version,
                calls=calls,
                p50_ms=percentile(buckets, 0.50),
                p95_ms=percentile(buckets, 0.95),
                p99_ms=percentile(buckets, 0.99),
                mean_ms=duration_sum / calls if calls else 0.0,
            )
        )
    return sorted(stats, key=lambda s: (-(s.p95_ms or 0.0), s.model, s.version))


def route_minute_histograms(
    *, start: datetime, end: datetime
) -> dict[tuple[str, str], dict[datetime, tuple[int, list[int]]]]:
    """Per (route, method) and minute in [start, end): request count and summed buckets
    across orgs and status classes; what route alerts are judged on."""
    histograms = _histograms(
        rows=_MINUTE_ROWS, keys="route, method, minute", params={"start": start, "end": end}
    )
    result: dict[tuple[str, str], dict[datetime, tuple[int, list[int]]]] = {}
    for (route, method, minute), counts in histograms.items():
        result.setdefault((route, method), {})[minute] = (sum(counts), counts)
    return result


def job_backlog() -> list[JobCount]:
    """procrastinate jobs per queue and status (todo = waiting, doing = running, ...)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
            "GROUP BY queue_name, status ORDER BY queue_name, status"
        )
        return [JobCount(queue, status, int(count)) for queue, status, count in cursor.fetchall()]


def alert_list(*, limit: int = 20) -> list[RouteAlert]:
    """Open episodes first, then the most recent resolved ones."""
    return list(
        RouteAlert.objects.order_by(F("resolved_at").desc(nulls_first=True), "-started_at")[:limit]
    )


def request_totals() -> list[RequestTotal]:
    """All-time histograms per route, method and status class (for /metrics)."""
    return list(RequestTotal.objects.order_by("route", "method", "status_class"))


def inference_totals() -> list[InferenceTotal]:
    """All-time histograms per model version (for /metrics)."""
    return list(InferenceTotal.objects.order_by("model", "version"))


def open_alert_count() -> int:
    """How many routes are slow right now."""
    return RouteAlert.objects.filter(resolved_at=None).count()


def org_api_request_count(*, org: Organization, since: datetime) -> int:
    """API requests the org made since `since`, as flushed so far (a flush interval behind).

    Hourly rollups up to the last rolled-up hour, minute rows after it, as in `window_span`."""
    latest = (
        RequestHour.objects.filter(hour__gte=since).order_by("-hour").values_list("hour", flat=True)
    ).first()
    boundary = since if latest is None else latest + timedelta(hours=1)
    hours = RequestHour.objects.filter(
        organization=org, api=True, hour__gte=since, hour__lt=boundary
    ).aggregate(n=Sum("count"))["n"]
    minutes = RequestMinute.objects.filter(
        organization=org, api=True, minute__gte=boundary
    ).aggregate(n=Sum("count"))["n"]
    return int(hours or 0) + int(minutes or 0)
