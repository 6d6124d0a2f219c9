"""Outbound webhooks: signed so receivers can verify them, retried with backoff by the real
worker, marked failed in the delivery log, and fired on report.ready / feedback.flagged."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from django.db import connection
from django.utils import timezone

from reports import services
from reports.models import ReportSchedule, WebhookDelivery, WebhookEndpoint
from tenants.models import Organization
from tests.jobs import run_worker_until_idle
from tests.reports.conftest import HookServer, add_feedback

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_leftover_jobs")]

TOLERANCE_SECONDS = 300


def verify(secret: str, header: str, body: bytes, now: float) -> bool:
    """A receiver's check, written from the documentation rather than from our code."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def _endpoint(org: Organization, url: str, events: list[str]) -> tuple[WebhookEndpoint, str]:
    return services.webhook_create(org=org, url=url, events=events, description="ops")


def _fast_forward_retries() -> None:
    """Make retries that procrastinate scheduled in the future due now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now() "
            "WHERE status = 'todo' AND task_name = 'reports.deliver_webhook'"
        )


def _retry_delay_seconds() -> float:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM scheduled_at - now()) FROM procrastinate_jobs "
            "WHERE status = 'todo' AND task_name = 'reports.deliver_webhook'"
        )
        (delay,) = cursor.fetchone()
    return float(delay)


def test_delivery_is_signed_and_verifies(org: Organization, hook_server: HookServer) -> None:
    endpoint, secret = _endpoint(org, hook_server.url, ["alert.fired"])
    services.webhook_emit(org=org, event="alert.fired", event_id="alert.fired:1", data={"x": 1})
    run_worker_until_idle("webhooks")

    (request,) = hook_server.requests
    body = request["body"]
    assert verify(secret, request["headers"]["Puna-Signature"], body, time.time())
    assert not verify("whsec_wrong", request["headers"]["Puna-Signature"], body, time.time())
    assert not verify(secret, request["headers"]["Puna-Signature"], body + b" ", time.time())
    assert not verify(secret, request["headers"]["Puna-Signature"], body, time.time() + 3600)
    payload = json.loads(body)
    assert payload["type"] == "alert.fired"
    assert payload["id"] == request["headers"]["Puna-Event-Id"] == "alert.fired:1"
    assert payload["org"] == "alpha"
    assert payload["data"] == {"x": 1}
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200


def test_failing_endpoint_is_retried_with_backoff_then_marked_failed(
    org: Organization, hook_server: HookServer
) -> None:
    hook_server.status = 503
    _endpoint(org, hook_server.url, ["alert.fired"])
    services.webhook_emit(org=org, event="alert.fired", event_id="alert.fired:2", data={})
    delays = []
    for _ in range(services.WEBHOOK_MAX_ATTEMPTS):
        run_worker_until_idle("webhooks")
        delivery = WebhookDelivery.objects.get()
        if delivery.status != "pending":
            break
        delays.append(_retry_delay_seconds())
        _fast_forward_retries()

    assert len(hook_server.requests) == services.WEBHOOK_MAX_ATTEMPTS
    assert delivery.status == "failed"
    assert delivery.attempts == services.WEBHOOK_MAX_ATTEMPTS
    assert delivery.last_status_code == 503
    assert "receiver is down" in delivery.last_error
    assert [entry["status_code"] for entry in delivery.attempts_log] == [503] * 5
    # Exponential backoff: 5 s, 25 s, 125 s, 625 s (read a moment after being scheduled).
    assert delays == pytest.approx([5, 25, 125, 625], abs=3)
    # Every attempt carried the same event id, for the receiver to deduplicate.
    assert {r["headers"]["Puna-Event-Id"] for r in hook_server.requests} == {"alert.fired:2"}


def test_endpoint_that_recovers_gets_the_delivery(
    org: Organization, hook_server: HookServer
) -> None:
    hook_server.status = 500
    _endpoint(org, hook_server.url, ["alert.fired"])
    services.webhook_emit(org=org, event="alert.fired", event_id="alert.fired:3", data={})
    run_worker_until_idle("webhooks")
    hook_server.status = 204
    _fast_forward_retries()
    run_worker_until_idle("webhooks")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded"
    assert delivery.attempts == 2
    assert delivery.delivered_at is not None


def test_unreachable_endpoint_is_logged(org: Organization) -> None:
    _endpoint(org, "http://127.0.0.1:9/nothing-listens", ["alert.fired"])
    services.webhook_emit(org=org, event="alert.fired", event_id="alert.fired:4", data={})
    run_worker_until_idle("webhooks")
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending"
    assert delivery.last_status_code is None
    assert delivery.last_error


def test_only_subscribed_enabled_endpoints_receive_an_event_and_only_once(
    org: Organization, other_org: Organization, hook_server: HookServer
) -> None:
    _endpoint(org, hook_server.url, ["report.ready"])
    paused, _ = _endpoint(org, hook_server.url, ["alert.fired"])
    services.webhook_update(endpoint=paused, changes={"enabled": False})
    _endpoint(other_org, hook_server.url, ["alert.fired"])
    subscribed, _ = _endpoint(org, hook_server.url, ["alert.fired", "report.ready"])
    for _ in range(2):
        services.webhook_emit(org=org, event="alert.fired", event_id="alert.fired:5", data={})
    run_worker_until_idle("webhooks")
    assert len(hook_server.requests) == 1
    assert WebhookDelivery.objects.get().endpoint == subscribed


def test_report_ready_fires_when_a_report_is_built(
    make_schedule: Callable[..., ReportSchedule], org: Organization, hook_server: HookServer
) -> None:
    _endpoint(org, hook_server.url, ["report.ready"])
    now = timezone.now()
    make_schedule(frequency="daily", hour=0, created_at=now - dt.timedelta(days=3))
    services.reports_dispatch(now=now)
    run_worker_until_idle("reports", "webhooks")
    (request,) = hook_server.requests
    payload = json.loads(request["body"])
    assert payload["type"] == "report.ready"
    assert payload["data"]["total"] == 0


def test_flagged_feedback_fires_once_per_item(org: Organization, hook_server: HookServer) -> None:
    _endpoint(org, hook_server.url, ["feedback.flagged"])
    now = timezone.now()
    spam = add_feedback(org, at=now, count=2, flagged=True, reasons=["spam"], text="BUY NOW")
    add_feedback(org, at=now, count=3)  # not flagged
    assert services.webhooks_flagged_scan(now=now) == 2
    assert services.webhooks_flagged_scan(now=now) == 0
    run_worker_until_idle("webhooks")
    ids = sorted(json.loads(r["body"])["data"]["feedback_id"] for r in hook_server.requests)
    assert ids == sorted(f.pk for f in spam)
