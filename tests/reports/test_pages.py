"""Dashboard pages: schedules, history with downloads, send now, preview, webhooks and their
delivery log. Charlie gets 404s; a viewer sees no controls and cannot post."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from reports import services
from reports.models import Report, ReportSchedule, WebhookEndpoint
from tenants.models import Membership, Organization, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha(make_schedule: Callable[..., ReportSchedule], org: Organization) -> dict[str, int]:
    schedule = make_schedule(
        name="Daily digest",
        frequency="daily",
        hour=0,
        created_at=timezone.now() - dt.timedelta(days=3),
    )
    ((report_id, _),) = services.reports_claim_due()
    services.report_process(org=org, report_id=report_id)
    endpoint, _ = services.webhook_create(
        org=org, url="https://hooks.alpha.example/puna", events=["report.ready"]
    )
    return {"schedule": schedule.pk, "report": report_id, "endpoint": endpoint.pk}


def test_reports_page_lists_schedules_and_creates_one(
    web_client: Client, alpha: dict[str, int], member: Membership
) -> None:
    page = web_client.get("/o/alpha/reports/")
    assert page.status_code == 200
    assert b"Daily digest" in page.content
    assert b"Send now" in page.content
    response = web_client.post(
        "/o/alpha/reports/",
        {
            "name": "Monthly board pack",
            "frequency": "monthly",
            "day_of_month": "31",
            "hour": "7",
            "recipient_member_ids": [str(member.pk)],
            "recipient_emails": "board@alpha.example, chair@alpha.example",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    created = ReportSchedule.objects.get(name="Monthly board pack")
    assert created.day_of_month == 31
    assert created.recipient_emails == ["board@alpha.example", "chair@alpha.example"]
    assert list(created.recipient_members.all()) == [member]


def test_edit_schedule(web_client: Client, alpha: dict[str, int]) -> None:
    url = f"/o/alpha/reports/schedules/{alpha['schedule']}/"
    assert web_client.get(url).status_code == 200
    response = web_client.post(
        url,
        {
            "name": "Weekly digest",
            "frequency": "weekly",
            "weekday": "4",
            "hour": "16",
            "recipient_emails": "principal@alpha.example",
        },
    )
    assert response.status_code == 302
    edited = ReportSchedule.objects.get(pk=alpha["schedule"])
    assert (edited.frequency, edited.weekday, edited.hour, edited.enabled) == (
        "weekly",
        4,
        16,
        False,
    )


def test_history_downloads_preview_and_send_now(web_client: Client, alpha: dict[str, int]) -> None:
    history = web_client.get("/o/alpha/reports/history/")
    assert f"/o/alpha/reports/{alpha['report']}/download/pdf/".encode() in history.content
    pdf = web_client.get(f"/o/alpha/reports/{alpha['report']}/download/pdf/")
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    preview = web_client.get(f"/o/alpha/reports/schedules/{alpha['schedule']}/preview/")
    assert preview.status_code == 200
    assert b"srcdoc=" in preview.content
    sent = web_client.post(f"/o/alpha/reports/schedules/{alpha['schedule']}/send-now/")
    assert sent.status_code == 302
    assert Report.objects.filter(kind="manual").count() == 1


def test_webhook_page_shows_the_secret_once_and_the_log(
    web_client: Client, alpha: dict[str, int]
) -> None:
    response = web_client.post(
        "/o/alpha/webhooks/",
        {"url": "https://hooks.example/new", "events": ["alert.fired"], "description": "ops"},
    )
    assert response.status_code == 200
    secret = WebhookEndpoint.objects.get(url="https://hooks.example/new").secret
    assert secret.encode() in response.content
    again = web_client.get("/o/alpha/webhooks/")
    assert secret.encode() not in again.content
    assert b"hooks.example/new" in again.content
    assert b"Delivery log" in again.content


def test_other_org_pages_are_404(
    alpha: dict[str, int], other_owner: Membership, login_as: Callable[[Membership], Client]
) -> None:
    charlie = login_as(other_owner)
    s, r, e = alpha["schedule"], alpha["report"], alpha["endpoint"]
    for url in [
        "/o/alpha/reports/",
        "/o/alpha/reports/history/",
        "/o/alpha/webhooks/",
        f"/o/alpha/reports/schedules/{s}/",
        f"/o/alpha/reports/schedules/{s}/preview/",
        f"/o/alpha/reports/{r}/download/pdf/",
    ]:
        assert charlie.get(url).status_code == 404, url
    for url in [
        f"/o/alpha/reports/schedules/{s}/send-now/",
        f"/o/alpha/reports/schedules/{s}/delete/",
        f"/o/alpha/webhooks/{e}/delete/",
    ]:
        assert charlie.post(url).status_code == 404, url
    # Alpha's ids inside Charlie's own org are "not found" too.
    for url in [
        f"/o/bravo/reports/schedules/{s}/",
        f"/o/bravo/reports/schedules/{s}/preview/",
        f"/o/bravo/reports/{r}/download/pdf/",
    ]:
        assert charlie.get(url).status_code == 404, url
    for url in [f"/o/bravo/reports/schedules/{s}/delete/", f"/o/bravo/webhooks/{e}/delete/"]:
        assert charlie.post(url).status_code == 404, url
    own = charlie.get("/o/bravo/reports/history/")
    assert b"Daily digest" not in own.content
    assert ReportSchedule.objects.filter(pk=s).exists()
    assert WebhookEndpoint.objects.filter(pk=e).exists()


def test_viewer_sees_no_controls_and_cannot_post(
    alpha: dict[str, int],
    org: Organization,
    make_member: Callable[..., Membership],
    login_as: Callable[[Membership], Client],
) -> None:
    viewer = login_as(make_member(org, Role.VIEWER, email="vic@alpha.example"))
    page = viewer.get("/o/alpha/reports/")
    assert page.status_code == 200
    assert b"Daily digest" in page.content
    assert b"Send now" not in page.content
    assert b"New schedule" not in page.content
    assert viewer.get(f"/o/alpha/reports/{alpha['report']}/download/csv/").status_code == 200
    s = alpha["schedule"]
    for url in [
        "/o/alpha/reports/",
        f"/o/alpha/reports/schedules/{s}/",
        f"/o/alpha/reports/schedules/{s}/send-now/",
        f"/o/alpha/reports/schedules/{s}/delete/",
        "/o/alpha/webhooks/",
        f"/o/alpha/webhooks/{alpha['endpoint']}/delete/",
    ]:
        assert viewer.post(url, {"name": "x"}).status_code == 403, url
    assert Report.objects.filter(kind="manual").count() == 0
    assert ReportSchedule.objects.get(pk=s).name == "Daily digest"
