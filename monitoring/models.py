"""Latency histograms at three resolutions (minute, hour, all-time) and route alert episodes.

Every histogram row stores `buckets`, counts per `histogram.BOUNDS_MS` bucket, so rows add up
element-wise (`monitoring_array_add` / `monitoring_array_sum`, created in migration 0002).

Request rows point at their organization without a database constraint: a flush must never
fail because an org was deleted in the seconds since the request, and rows without an org
(sign-in pages, health checks) live in the same table. Deleting an org through the ORM still
cascades to its rows.
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.timezone import now

from tenants.models import Organization


class RequestStats(models.Model):
    organization = models.ForeignKey(
        Organization,
        null=True,
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    route = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    status_class = models.CharField(max_length=3)
    # Served under /api/: what an org's monitoring page shows.
    api = models.BooleanField(default=False)
    count = models.BigIntegerField(default=0)
    buckets = ArrayField(models.BigIntegerField())
    duration_sum_ms = models.FloatField(default=0.0)
    db_sum_ms = models.FloatField(default=0.0)
    inference_sum_ms = models.FloatField(default=0.0)

    class Meta:
        abstract = True


class RequestMinute(RequestStats):
    """One minute of one route's traffic for one org (or none). Kept 14 days."""

    minute = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            # The upsert's conflict target; NULL orgs must collide too, hence nulls_distinct.
            models.UniqueConstraint(
                fields=["organization", "minute", "route", "method", "status_class"],
                name="requestminute_key",
                nulls_distinct=False,
            )
        ]
        indexes: ClassVar = [models.Index(fields=["minute"], name="requestminute_minute_idx")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.method} {self.route} {self.status_class}"


class RequestHour(RequestStats):
    """Hourly rollup of RequestMinute. Kept 13 months."""

    hour = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization", "hour", "route", "method", "status_class"],
                name="requesthour_key",
                nulls_distinct=False,
            )
        ]
        indexes: ClassVar = [models.Index(fields=["hour"], name="requesthour_hour_idx")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.method} {self.route} {self.status_class}"


class RequestTotal(models.Model):
    """All-time counts per route, method and status class: Prometheus' cumulative histogram.

    Kept apart from the pruned tables because a Prometheus counter must never go down.
    """

    route = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    status_class = models.CharField(max_length=3)
    count = models.BigIntegerField(default=0)
    buckets = ArrayField(models.BigIntegerField())
    duration_sum_ms = models.FloatField(default=0.0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["route", "method", "status_class"], name="requesttotal_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.route} {self.status_class}"


class InferenceStats(models.Model):
    model = models.CharField(max_length=100)
    version = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)
    buckets = ArrayField(models.BigIntegerField())
    duration_sum_ms = models.FloatField(default=0.0)

    class Meta:
        abstract = True


class InferenceMinute(InferenceStats):
    minute = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["minute", "model", "version"], name="inferenceminute_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.model}@{self.version}"


class InferenceHour(InferenceStats):
    hour = models.DateTimeField()

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["hour", "model", "version"], name="inferencehour_key")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model}@{self.version}"


class InferenceTotal(InferenceStats):
    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["model", "version"], name="inferencetotal_key")
        ]

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"


class RouteAlert(models.Model):
    """One episode of a route's p95 staying above MONITORING_P95_ALERT_MS."""

    route = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    threshold_ms = models.FloatField()
    started_at = models.DateTimeField(default=now)
    last_breach_at = models.DateTimeField(default=now)
    p95_ms = models.FloatField(help_text="p95 of the latest breaching minute.")
    notified_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            # At most one open episode per route: the "email once per episode" guarantee.
            models.UniqueConstraint(
                fields=["route", "method"],
                condition=models.Q(resolved_at__isnull=True),
                name="routealert_one_open",
            )
        ]
        indexes: ClassVar = [models.Index(fields=["-started_at"], name="routealert_started_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.route} p95 {self.p95_ms:.0f} ms since {self.started_at}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
