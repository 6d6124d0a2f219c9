"""Spike and burst detection against the org's own baseline: fires on a planted spike, stays
quiet on noise and on a small school's low volume; alerts are emailed and sent to webhooks."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.core import mail

from reports import detectors, services
from reports.models import AlertEvent, WebhookDelivery
from tenants.models import Membership, Organization
from tests.reports.conftest import add_feedback

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 10, 6, 0, tzinfo=UTC)  # 14:00 in Manila, after class
HOUR = dt.timedelta(hours=1)


def _history(org: Organization, *, per_hour: int, negative_share: float, seed: int = 1) -> None:
    """Two weeks of the same afternoon hour with Poisson-ish noise around `per_hour`."""
    rng = random.Random(seed)
    for day in range(1, detectors.BASELINE_DAYS + 1):
        n = max(0, round(rng.gauss(per_hour, per_hour**0.5)))
        negatives = sum(rng.random() < negative_share for _ in range(n))
        start = NOW - dt.timedelta(days=day) - HOUR
        add_feedback(org, at=start, sentiment="negative", count=negatives, spread=HOUR)
        add_feedback(org, at=start, sentiment="positive", count=n - negatives, spread=HOUR)


# --- pure detectors --------------------------------------------------------------------------


def test_volume_spike_fires_well_above_baseline() -> None:
    found = detectors.volume_spike(
        total=120, baseline_totals=[28, 31, 30, 35, 27, 30, 29], min_volume=30, ratio=3.0
    )
    assert found is not None
    assert found.baseline == pytest.approx(30, abs=1)


def test_volume_noise_does_not_fire() -> None:
    rng = random.Random(7)
    for _ in range(500):
        baseline = [max(0, round(rng.gauss(40, 6.3))) for _ in range(14)]
        current = max(0, round(rng.gauss(40, 6.3)))
        assert (
            detectors.volume_spike(
                total=current, baseline_totals=baseline, min_volume=30, ratio=3.0
            )
            is None
        )


def test_small_school_is_not_alarmed_by_a_few_comments() -> None:
    # Usually 0-1 comments in this hour; 6 is "six times normal" but below the volume guard.
    assert (
        detectors.volume_spike(total=6, baseline_totals=[0, 1, 0, 0, 1], min_volume=30, ratio=3)
        is None
    )
    assert (
        detectors.negative_share_spike(
            total=6,
            negative=6,
            baseline_totals=[1] * 14,
            baseline_negatives=[0] * 14,
            min_volume=20,
            min_increase=0.2,
        )
        is None
    )


def test_negative_share_spike_fires_and_noise_does_not() -> None:
    baseline_totals, baseline_negatives = [40] * 14, [12] * 14  # 30% negative
    assert detectors.negative_share_spike(
        total=50,
        negative=35,
        baseline_totals=baseline_totals,
        baseline_negatives=baseline_negatives,
        min_volume=20,
        min_increase=0.2,
    )
    rng = random.Random(3)
    for _ in range(500):
        total = rng.randint(20, 80)
        negative = sum(rng.random() < 0.3 for _ in range(total))
        assert (
            detectors.negative_share_spike(
                total=total,
                negative=negative,
                baseline_totals=baseline_totals,
                baseline_negatives=baseline_negatives,
                min_volume=20,
                min_increase=0.2,
            )
            is None
        )


def test_flagged_bursts_are_per_source_above_the_guard() -> None:
    found = detectors.flagged_bursts(groups={"source:form": 25, "source:sms": 3}, min_volume=10)
    assert [f.subject for f in found] == ["source:form"]


# --- against the database --------------------------------------------------------------------


@pytest.fixture
def admins(owner: Membership) -> list[str]:
    return [owner.user.email]


def test_planted_negative_wave_fires_once_and_notifies(
    org: Organization, admins: list[str]
) -> None:
    _history(org, per_hour=40, negative_share=0.25)
    add_feedback(org, at=NOW - HOUR, sentiment="negative", count=38, spread=HOUR)
    add_feedback(org, at=NOW - HOUR, sentiment="positive", count=10, spread=HOUR)

    fired = services.alerts_detect(org=org, now=NOW)
    assert [e.kind for e in fired] == ["negative_spike"]
    event = fired[0]
    assert event.observed == pytest.approx(38 / 48, abs=0.01)
    assert event.baseline == pytest.approx(0.25, abs=0.06)
    # Within the cooldown, the same wave is not announced again.
    assert services.alerts_detect(org=org, now=NOW + dt.timedelta(minutes=5)) == []

    assert services.alert_notify(org=org, event_id=event.pk)
    assert not services.alert_notify(org=org, event_id=event.pk)
    (email,) = mail.outbox
    assert email.bcc == admins
    assert "Negative share spike" in email.subject


def test_volume_flood_and_flagged_burst_fire(org: Organization) -> None:
    _history(org, per_hour=10, negative_share=0.3)
    add_feedback(org, at=NOW - HOUR, sentiment="neutral", count=90, spread=HOUR)
    add_feedback(
        org,
        at=NOW - dt.timedelta(minutes=10),
        sentiment="neutral",
        count=15,
        flagged=True,
        reasons=["spam"],
        source="form",
    )
    kinds = {(e.kind, e.subject) for e in services.alerts_detect(org=org, now=NOW)}
    assert kinds == {("volume_spike", ""), ("flagged_burst", "source:form")}


def test_ordinary_day_is_quiet(org: Organization) -> None:
    _history(org, per_hour=40, negative_share=0.3)
    add_feedback(org, at=NOW - HOUR, sentiment="negative", count=13, spread=HOUR)
    add_feedback(org, at=NOW - HOUR, sentiment="positive", count=29, spread=HOUR)
    assert services.alerts_detect(org=org, now=NOW) == []


def test_small_school_low_volume_is_quiet(org: Organization) -> None:
    _history(org, per_hour=1, negative_share=0.2)
    add_feedback(org, at=NOW - HOUR, sentiment="negative", count=8, spread=HOUR)
    assert services.alerts_detect(org=org, now=NOW) == []


def test_alert_goes_to_subscribed_webhooks(org: Organization, other_org: Organization) -> None:
    services.webhook_create(org=org, url="https://hooks.example/puna", events=["alert.fired"])
    services.webhook_create(
        org=other_org, url="https://hooks.example/other", events=["alert.fired"]
    )
    add_feedback(org, at=NOW - HOUR, sentiment="neutral", count=200, spread=HOUR)
    (event,) = services.alerts_detect(org=org, now=NOW)
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.organization == org
    assert delivery.payload["data"]["alert_id"] == event.pk
    assert AlertEvent.objects.for_org(other_org).count() == 0
