"""What the middleware records for a request, and the headers and log lines it adds."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from time import sleep

import pytest
from django.db.models import Sum
from django.test import Client
from rest_framework.test import APIClient

from monitoring.context import request_context
from monitoring.histogram import BOUNDS_MS, bucket_index, bucket_range
from monitoring.logging import JsonFormatter, RequestContextFilter
from monitoring.models import InferenceMinute, RequestMinute, RequestTotal
from monitoring.recorder import recorder
from monitoring.services import monitoring_flush
from monitoring.timing import inference_timer
from tenants.models import Membership, Organization

pytestmark = pytest.mark.django_db


def _server_timing(value: str) -> dict[str, float]:
    return {name: float(duration) for name, duration in re.findall(r"(\w+);dur=([0-9.]+)", value)}


def test_a_request_lands_in_its_route_and_duration_bucket(
    api_client: APIClient, owner: Membership, org: Organization
) -> None:
    response = api_client.get(f"/api/v1/members/{owner.pk}")
    assert response.status_code == 200
    total_ms = _server_timing(response["Server-Timing"])["total"]

    assert monitoring_flush() == 1
    row = RequestMinute.objects.get()
    # The pattern's name, not the raw path with the member's id in it.
    assert row.route == "member-detail"
    assert str(owner.pk) not in row.route
    assert (row.method, row.status_class, row.organization_id, row.api) == (
        "GET",
        "2xx",
        org.pk,
        True,
    )
    assert row.count == 1
    assert sum(row.buckets) == 1
    index = bucket_index(row.duration_sum_ms)
    assert row.buckets[index] == 1
    assert row.duration_sum_ms == pytest.approx(total_ms, abs=0.001)


def test_the_recorded_duration_picks_the_bucket_whose_bounds_hold_it() -> None:
    recorder.record_request(
        route="member-list",
        method="GET",
        status_class="2xx",
        org_id=None,
        api=True,
        duration_ms=3.0,
    )
    monitoring_flush()
    row = RequestMinute.objects.get()
    (index,) = [i for i, n in enumerate(row.buckets) if n]
    lower, upper = bucket_range(index)
    assert lower < 3.0 <= upper
    assert BOUNDS_MS[index] == upper


def test_unmatched_paths_are_one_route_whatever_the_path(api_key_client: APIClient) -> None:
    api_key_client.get("/api/v1/no-such-thing/123")
    api_key_client.get("/definitely/not/here")
    monitoring_flush()
    # Summed, in case the two requests straddle a minute.
    rows = list(RequestMinute.objects.values_list("route", "status_class").annotate(n=Sum("count")))
    assert rows == [("<unmatched>", "4xx", 2)]


def test_errors_are_counted_by_status_class(api_client: APIClient) -> None:
    api_client.get("/api/v1/members/999999")
    monitoring_flush()
    row = RequestMinute.objects.get()
    assert (row.route, row.status_class) == ("member-detail", "4xx")


def test_totals_for_metrics_have_no_org_dimension(
    api_client: APIClient, other_owner: Membership, login_as: Callable[[Membership], Client]
) -> None:
    api_client.get("/api/v1/members")
    login_as(other_owner).get("/api/v1/members")
    monitoring_flush()
    assert RequestMinute.objects.count() == 2
    total = RequestTotal.objects.get()
    assert (total.route, total.count) == ("member-list", 2)


def test_api_responses_carry_server_timing(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/members")
    timing = _server_timing(response["Server-Timing"])
    assert set(timing) == {"db", "inference", "total"}
    # The session lookup and the member list are queries.
    assert timing["db"] > 0
    assert timing["inference"] == 0
    assert timing["total"] >= timing["db"]


def test_dashboard_pages_do_not_carry_server_timing(web_client: Client, org: Organization) -> None:
    response = web_client.get(f"/o/{org.slug}/")
    assert response.status_code == 200
    assert "Server-Timing" not in response
    assert response["X-Request-ID"]


def test_a_valid_request_id_is_echoed(api_key_client: APIClient) -> None:
    response = api_key_client.get("/api/v1/members", HTTP_X_REQUEST_ID="trace-1.2_abc")
    assert response["X-Request-ID"] == "trace-1.2_abc"


@pytest.mark.parametrize(
    "header", ["", "x" * 129, "has space", "semi;colon", "new\nline", "ünïcode"]
)
def test_an_unsafe_request_id_is_replaced(api_key_client: APIClient, header: str) -> None:
    response = api_key_client.get("/api/v1/members", HTTP_X_REQUEST_ID=header)
    assert response["X-Request-ID"] != header
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_a_request_id_is_generated_when_absent_and_differs_per_request(client: Client) -> None:
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The request logger rendered as production renders it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("puna.request")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_each_request_logs_one_json_line_with_id_org_route_status_duration(
    api_client: APIClient, org: Organization, json_log: io.StringIO
) -> None:
    api_client.get("/api/v1/members", HTTP_X_REQUEST_ID="req-42")
    (line,) = json_log.getvalue().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "req-42"
    assert record["org_id"] == org.pk
    assert record["route"] == "member-list"
    assert record["status"] == 200
    assert record["duration_ms"] > 0
    assert "/api/v1/members" not in line


def test_djangos_own_error_lines_carry_the_request_id(
    api_key_client: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Django logs 4xx/5xx after the middleware chain has returned.
    caplog.handler.addFilter(RequestContextFilter())
    api_key_client.get("/api/v1/members", HTTP_X_REQUEST_ID="req-403")
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert getattr(record, "status_code", None) == 403
    assert getattr(record, "request_id", None) == "req-403"


def test_other_log_lines_inside_a_request_get_its_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("puna.test.other")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with request_context("abc-123"):
            logger.info("inside")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == "abc-123"
    assert outside["request_id"] == "-"


def test_inference_timer_feeds_the_request_and_the_model_histogram() -> None:
    with request_context("r1") as ctx, inference_timer("sentiment", "2026-01"):
        sleep(0.002)
    assert ctx.inference_ms >= 2.0

    with inference_timer("sentiment", "2026-01"):
        pass
    monitoring_flush()
    rows = list(InferenceMinute.objects.all())
    assert {(row.model, row.version) for row in rows} == {("sentiment", "2026-01")}
    assert sum(row.count for row in rows) == 2
    assert sum(row.buckets[bucket_index(ctx.inference_ms)] for row in rows) >= 1


def test_inference_timer_counts_failed_calls() -> None:
    with pytest.raises(RuntimeError), inference_timer("language", "v1"):
        raise RuntimeError("model crashed")
    monitoring_flush()
    assert InferenceMinute.objects.get().count == 1
