"""Prometheus exposition rendered from the all-time tables in PostgreSQL.

Why not prometheus_client's multiprocess mode: it needs PROMETHEUS_MULTIPROC_DIR in the
environment before the library is imported, a directory wiped at each deploy, and a gunicorn
`child_exit` hook, and it still shows only the workers of the one container being scraped.
Every worker already flushes its histograms to PostgreSQL, so a scrape of any worker of any
replica reads the same complete numbers from two small tables (one row per route, method and
status class), at the cost of lagging by up to MONITORING_FLUSH_SECONDS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from monitoring import selectors
from monitoring.histogram import BOUNDS_MS, EXPORTED_BOUND_INDEXES

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def _prometheus_buckets(counts: Sequence[int], total: int) -> list[tuple[str, float]]:
    """Cumulative counts at the exported bounds (in seconds), then +Inf."""
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    start = 0
    for index in EXPORTED_BOUND_INDEXES:
        cumulative += sum(counts[start : index + 1])
        start = index + 1
        # repr is the shortest exact form (0.064, 65.536): stable label values across scrapes.
        buckets.append((repr(BOUNDS_MS[index] / 1000.0), float(cumulative)))
    buckets.append(("+Inf", float(total)))
    return buckets


class DatabaseCollector:
    """Collects at scrape time; nothing is registered globally or at import."""

    def collect(self) -> Iterable[Metric]:
        requests = HistogramMetricFamily(
            "puna_http_request_duration_seconds",
            "Time from the monitoring middleware receiving a request to returning its response.",
            labels=["route", "method", "status"],
        )
        for row in selectors.request_totals():
            requests.add_metric(
                [row.route, row.method, row.status_class],
                _prometheus_buckets(row.buckets, row.count),
                row.duration_sum_ms / 1000.0,
            )
        yield requests

        inference = HistogramMetricFamily(
            "puna_inference_duration_seconds",
            "Time spent in one inference call, by model and version.",
            labels=["model", "version"],
        )
        for irow in selectors.inference_totals():
            inference.add_metric(
                [irow.model, irow.version],
                _prometheus_buckets(irow.buckets, irow.count),
                irow.duration_sum_ms / 1000.0,
            )
        yield inference

        jobs = GaugeMetricFamily(
            "puna_background_jobs",
            "procrastinate jobs by queue and status (todo = backlog).",
            labels=["queue", "status"],
        )
        for job in selectors.job_backlog():
            jobs.add_metric([job.queue, job.status], job.count)
        yield jobs

        yield GaugeMetricFamily(
            "puna_route_alerts_open",
            "Routes whose p95 is above MONITORING_P95_ALERT_MS right now.",
            value=selectors.open_alert_count(),
        )


def metrics_render() -> bytes:
    """The Prometheus text exposition of everything above."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
