"""The org's monitoring page shows its own API traffic only; the global page is staff-only."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils.timezone import now
from rest_framework.test import APIClient

from monitoring import selectors
from monitoring.models import RouteAlert
from monitoring.recorder import recorder
from monitoring.services import monitoring_flush, monitoring_rollup
from tenants.models import Membership, Organization, Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _row(html: str, route: str) -> str:
    match = re.search(rf"<tr>\s*<td><code>GET {re.escape(route)}</code></td>(.*?)</tr>", html, re.S)
    assert match, f"{route} not on the page"
    return match.group(1)


def _requests_cell(row: str) -> int:
    return int(re.findall(r"<td>(.*?)</td>", row)[0])


@pytest.fixture
def traffic(
    api_client: APIClient,
    other_owner: Membership,
    login_as: Callable[[Membership], Client],
) -> None:
    """Alice's org calls members twice; Charlie's org calls members 5 times and invitations."""
    for _ in range(2):
        api_client.get("/api/v1/members")
    charlie = login_as(other_owner)
    for _ in range(5):
        charlie.get("/api/v1/members")
    charlie.get("/api/v1/invitations")
    monitoring_flush()


@pytest.mark.usefixtures("traffic")
def test_org_page_shows_its_own_api_traffic(web_client: Client, org: Organization) -> None:
    response = web_client.get(f"/o/{org.slug}/monitoring/")
    assert response.status_code == 200
    html = response.content.decode()
    assert _requests_cell(_row(html, "member-list")) == 2


@pytest.mark.usefixtures("traffic")
def test_org_page_does_not_show_charlies_org_traffic(web_client: Client, org: Organization) -> None:
    html = web_client.get(f"/o/{org.slug}/monitoring/").content.decode()
    assert "invitation-list" not in html
    assert ">7<" not in html  # not both orgs' member-list calls added up


@pytest.mark.usefixtures("traffic")
def test_org_page_leaves_out_dashboard_page_views(web_client: Client, org: Organization) -> None:
    web_client.get(f"/o/{org.slug}/")
    monitoring_flush()
    html = web_client.get(f"/o/{org.slug}/monitoring/").content.decode()
    assert "org-overview" not in html


def test_charlie_gets_404_for_alices_monitoring_page(
    org: Organization, other_owner: Membership, login_as: Callable[[Membership], Client]
) -> None:
    assert login_as(other_owner).get(f"/o/{org.slug}/monitoring/").status_code == 404


def test_every_role_may_read_the_monitoring_page(
    org: Organization,
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    viewer = make_member(org, Role.VIEWER)
    response = login_as(viewer).get(f"/o/{org.slug}/monitoring/")
    assert response.status_code == 200
    assert f'href="/o/{org.slug}/monitoring/"' in response.content.decode()  # the nav link


@pytest.mark.usefixtures("traffic")
@pytest.mark.parametrize("window", ["1h", "24h", "7d", "bogus"])
def test_every_window_counts_recent_traffic(
    web_client: Client, org: Organization, window: str
) -> None:
    html = web_client.get(f"/o/{org.slug}/monitoring/?window={window}").content.decode()
    assert _requests_cell(_row(html, "member-list")) == 2


def test_long_windows_add_hourly_rollups_and_recent_minutes_once(org: Organization) -> None:
    moment = now()
    two_days_ago = moment - timedelta(days=2)
    for at in (two_days_ago, two_days_ago + timedelta(minutes=1), moment):
        recorder.record_request(
            route="feedback-list",
            method="GET",
            status_class="2xx",
            org_id=org.pk,
            api=True,
            duration_ms=20.0,
            at=at.timestamp(),
        )
    recorder.record_request(
        route="feedback-list",
        method="GET",
        status_class="5xx",
        org_id=org.pk,
        api=True,
        duration_ms=20.0,
        at=moment.timestamp(),
    )
    monitoring_flush()
    monitoring_rollup(now=moment, hours=24 * 3)

    (week,) = selectors.org_endpoint_stats(org=org, window="7d")
    (hour,) = selectors.org_endpoint_stats(org=org, window="1h")
    assert week.requests == 4
    assert hour.requests == 2
    assert hour.server_error_rate == 0.5
    assert hour.per_minute == pytest.approx(2 / 60)
    assert week.p50_ms is not None
    assert 16 < week.p50_ms <= 23  # 20 ms, within its bucket


@pytest.mark.usefixtures("traffic")
def test_ops_page_is_404_for_anonymous_and_non_staff(client: Client, web_client: Client) -> None:
    assert client.get("/ops/monitoring/").status_code == 404
    assert web_client.get("/ops/monitoring/").status_code == 404


@pytest.mark.usefixtures("traffic")
def test_ops_page_shows_all_orgs_inference_jobs_and_alerts(client: Client) -> None:
    staff = make_user(is_staff=True)
    client.force_login(staff)
    recorder.record_inference(model="sentiment", version="2026-02", duration_ms=30.0)
    monitoring_flush()
    RouteAlert.objects.create(route="feedback-list", method="POST", threshold_ms=1000, p95_ms=1500)

    response = client.get("/ops/monitoring/")

    assert response.status_code == 200
    html = response.content.decode()
    assert _requests_cell(_row(html, "member-list")) == 7
    assert "invitation-list" in html
    assert "2026-02" in html
    assert "open" in html
    assert "1500 ms" in html
