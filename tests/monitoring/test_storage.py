"""Flushing to PostgreSQL, hourly rollups and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring.histogram import bucket_index, empty_counts
from monitoring.models import (
    InferenceHour,
    InferenceMinute,
    InferenceTotal,
    RequestHour,
    RequestMinute,
    RequestTotal,
    RouteAlert,
)
from monitoring.recorder import recorder
from monitoring.services import monitoring_flush, monitoring_prune, monitoring_rollup
from tenants.models import Organization

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 10, 14, 7, 30, tzinfo=UTC)


def _record(
    org_id: int | None, duration_ms: float, at: datetime, route: str = "member-list"
) -> None:
    recorder.record_request(
        route=route,
        method="GET",
        status_class="2xx",
        org_id=org_id,
        api=True,
        duration_ms=duration_ms,
        db_ms=1.0,
        at=at.timestamp(),
    )


def test_two_flushes_of_the_same_minute_add_up(org: Organization) -> None:
    _record(org.pk, 5.0, T0)
    _record(org.pk, 5.0, T0)
    assert monitoring_flush() == 1
    # Another worker, or this one a few seconds later, flushes the same key and minute.
    _record(org.pk, 5.0, T0 + timedelta(seconds=10))
    _record(org.pk, 300.0, T0 + timedelta(seconds=20))
    assert monitoring_flush() == 1

    row = RequestMinute.objects.get()
    assert row.minute == T0.replace(second=0)
    assert row.count == 4
    assert row.buckets[bucket_index(5.0)] == 3
    assert row.buckets[bucket_index(300.0)] == 1
    assert sum(row.buckets) == 4
    assert row.duration_sum_ms == pytest.approx(315.0)
    assert row.db_sum_ms == pytest.approx(4.0)
    total = RequestTotal.objects.get()
    assert total.count == 4
    assert total.buckets == row.buckets


def test_rows_without_an_org_also_merge() -> None:
    _record(None, 2.0, T0)
    monitoring_flush()
    _record(None, 2.0, T0)
    monitoring_flush()
    assert RequestMinute.objects.count() == 1
    assert RequestMinute.objects.get(organization=None).count == 2


def test_flushing_nothing_writes_nothing() -> None:
    assert monitoring_flush() == 0
    assert not RequestMinute.objects.exists()


def test_inference_flushes_merge_too() -> None:
    for _ in range(2):
        recorder.record_inference(
            model="sentiment", version="v3", duration_ms=12.0, at=T0.timestamp()
        )
        monitoring_flush()
    assert InferenceMinute.objects.get().count == 2
    assert InferenceTotal.objects.get().count == 2


def test_a_failed_flush_keeps_the_counts_for_the_next_one(org: Organization) -> None:
    _record(org.pk, 5.0, T0, route="x" * 201)  # too long for the column: the flush fails
    with pytest.raises(Exception, match="too long"):
        monitoring_flush()
    batch = recorder.drain()
    assert sum(agg.count for agg in batch.requests.values()) == 1


def test_rollup_sums_an_hours_minutes_per_key(org: Organization, other_org: Organization) -> None:
    hour = T0.replace(minute=0, second=0)
    for minute in (0, 17, 59):
        _record(org.pk, 10.0, hour + timedelta(minutes=minute))
    _record(other_org.pk, 900.0, hour + timedelta(minutes=3))
    _record(org.pk, 10.0, hour + timedelta(hours=1, minutes=1))  # next hour, still running
    monitoring_flush()

    monitoring_rollup(now=hour + timedelta(hours=1, minutes=5))

    rows = {r.organization_id: r for r in RequestHour.objects.all()}
    assert set(rows) == {org.pk, other_org.pk}
    assert rows[org.pk].hour == hour
    assert rows[org.pk].count == 3
    assert rows[org.pk].buckets[bucket_index(10.0)] == 3
    assert rows[org.pk].duration_sum_ms == pytest.approx(30.0)
    assert rows[other_org.pk].count == 1


def test_rollup_is_idempotent_and_picks_up_late_minutes(org: Organization) -> None:
    hour = T0.replace(minute=0, second=0)
    _record(org.pk, 10.0, hour + timedelta(minutes=1))
    monitoring_flush()
    later = hour + timedelta(hours=1, minutes=5)
    monitoring_rollup(now=later)
    monitoring_rollup(now=later)
    assert RequestHour.objects.get().count == 1

    _record(org.pk, 10.0, hour + timedelta(minutes=2))  # flushed after the first rollup
    monitoring_flush()
    monitoring_rollup(now=later + timedelta(hours=1))
    assert RequestHour.objects.get().count == 2


def test_rollup_covers_inference(org: Organization) -> None:
    recorder.record_inference(model="m", version="1", duration_ms=3.0, at=T0.timestamp())
    monitoring_flush()
    monitoring_rollup(now=T0 + timedelta(hours=1))
    assert InferenceHour.objects.get().count == 1


def test_prune_keeps_14_days_of_minutes_and_13_months_of_hours(org: Organization) -> None:
    now = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    buckets = empty_counts()
    for age in (timedelta(days=13, hours=23), timedelta(days=14, minutes=1)):
        RequestMinute.objects.create(
            minute=now - age,
            organization=org,
            route=f"r{age.days}",
            method="GET",
            status_class="2xx",
            count=1,
            buckets=buckets,
        )
        InferenceMinute.objects.create(
            minute=now - age, model="m", version=f"v{age.days}", count=1, buckets=buckets
        )
    for hour, route in (
        (datetime(2025, 3, 1, tzinfo=UTC), "kept"),
        (datetime(2025, 2, 1, tzinfo=UTC), "old"),
    ):
        RequestHour.objects.create(
            hour=hour,
            organization=org,
            route=route,
            method="GET",
            status_class="2xx",
            count=1,
            buckets=buckets,
        )
    RouteAlert.objects.create(
        route="old",
        method="GET",
        threshold_ms=1,
        p95_ms=2,
        resolved_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    RouteAlert.objects.create(route="open", method="GET", threshold_ms=1, p95_ms=2)

    deleted = monitoring_prune(now=now)

    assert list(RequestMinute.objects.values_list("route", flat=True)) == ["r13"]
    assert list(InferenceMinute.objects.values_list("version", flat=True)) == ["v13"]
    assert list(RequestHour.objects.values_list("route", flat=True)) == ["kept"]
    assert list(RouteAlert.objects.values_list("route", flat=True)) == ["open"]
    assert deleted == {
        "request_minutes": 1,
        "inference_minutes": 1,
        "request_hours": 1,
        "inference_hours": 0,
        "alerts": 1,
    }


def test_deleting_an_org_deletes_its_monitoring_rows(org: Organization) -> None:
    _record(org.pk, 5.0, T0)
    _record(None, 5.0, T0)
    monitoring_flush()
    org.delete()
    assert list(RequestMinute.objects.values_list("organization_id", flat=True)) == [None]
