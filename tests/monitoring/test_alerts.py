"""A route whose p95 stays over the threshold emails staff once per episode."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from pytest_django.fixtures import Settings

from monitoring.models import RouteAlert
from monitoring.recorder import recorder
from monitoring.services import alert_evaluate, monitoring_flush
from tenants.models import Membership, Organization, Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 10, 14, 7, tzinfo=UTC)


@pytest.fixture(autouse=True)
def alert_settings(settings: Settings) -> None:
    settings.MONITORING_P95_ALERT_MS = 1000.0
    settings.MONITORING_ALERT_MINUTES = 3
    settings.MONITORING_ALERT_MIN_REQUESTS = 2
    settings.MONITORING_FLUSH_SECONDS = 0


@pytest.fixture
def staff(org: Organization, make_member: Callable[..., Membership]) -> list[str]:
    make_member(org, Role.OWNER, email="owner-not-staff@alpha.example")
    make_user(email="inactive-op@puna.example", is_staff=True, is_active=False)
    return [make_user(email="op@puna.example", is_staff=True).email]


def _traffic(minute: int, duration_ms: float, route: str = "feedback-list", n: int = 2) -> None:
    at = (START + timedelta(minutes=minute, seconds=30)).timestamp()
    for _ in range(n):
        recorder.record_request(
            route=route,
            method="POST",
            status_class="2xx",
            org_id=None,
            api=True,
            duration_ms=duration_ms,
            at=at,
        )
    monitoring_flush()


def _evaluate_after(minute: int) -> list[RouteAlert]:
    """Evaluate 20 s into the minute after `minute` (so `minute` has settled)."""
    return alert_evaluate(now=START + timedelta(minutes=minute + 1, seconds=20))


def test_slow_minutes_in_a_row_open_one_episode_and_email_staff_once(staff: list[str]) -> None:
    for minute in range(3):
        _traffic(minute, 2500.0)
    _traffic(1, 10.0, route="member-list")  # a fast route stays quiet

    (alert,) = _evaluate_after(2)

    assert (alert.route, alert.method, alert.resolved_at) == ("feedback-list", "POST", None)
    assert alert.p95_ms > 1000
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == staff
    assert "feedback-list" in mail.outbox[0].subject

    _traffic(3, 2500.0)
    assert _evaluate_after(3) == []
    assert len(mail.outbox) == 1  # still the same episode
    alert.refresh_from_db()
    assert alert.last_breach_at == START + timedelta(minutes=3)


def test_a_good_minute_resolves_and_a_new_streak_is_a_new_episode(staff: list[str]) -> None:
    for minute in range(3):
        _traffic(minute, 2500.0)
    _evaluate_after(2)
    _traffic(3, 50.0)
    _evaluate_after(3)
    assert RouteAlert.objects.get().resolved_at is not None

    for minute in range(4, 7):
        _traffic(minute, 2500.0)
    _evaluate_after(6)
    assert RouteAlert.objects.count() == 2
    assert RouteAlert.objects.filter(resolved_at=None).count() == 1
    assert len(mail.outbox) == 2


def test_a_broken_streak_does_not_alert(staff: list[str]) -> None:
    _traffic(0, 2500.0)
    _traffic(1, 50.0)
    _traffic(2, 2500.0)
    assert _evaluate_after(2) == []
    assert mail.outbox == []


def test_minutes_with_too_few_requests_do_not_count(staff: list[str]) -> None:
    for minute in range(3):
        _traffic(minute, 2500.0, n=1 if minute == 1 else 2)
    assert _evaluate_after(2) == []


def test_the_unsettled_current_minute_is_not_judged(staff: list[str]) -> None:
    for minute in range(3):
        _traffic(minute, 2500.0)
    # 3 s into the next minute the last minute may still be flushing from other workers.
    assert alert_evaluate(now=START + timedelta(minutes=3, seconds=3)) == []


def test_alerts_are_recorded_even_without_staff_to_email() -> None:
    for minute in range(3):
        _traffic(minute, 2500.0)
    (alert,) = _evaluate_after(2)
    assert alert.notified_at is not None
    assert mail.outbox == []
