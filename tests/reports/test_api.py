"""The reports API: schedules, reports and downloads, send-now and preview, webhooks with the
secret shown once, the delivery log; Charlie (another org) sees none of it; viewers and read
keys cannot change anything."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from pypdf import PdfReader
from rest_framework.test import APIClient

from reports import services
from reports.models import ReportSchedule, WebhookEndpoint
from tenants.models import Membership, Organization, Role
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def charlie_api(other_owner: Membership) -> APIClient:
    client = APIClient()
    client.force_login(other_owner.user)
    client.credentials(HTTP_X_PUNA_ORG=other_owner.organization.slug)
    return client


@pytest.fixture
def alpha(
    make_schedule: Callable[..., ReportSchedule], org: Organization, member: Membership
) -> dict[str, int]:
    """One of each of Alpha's objects, with a sent report."""
    schedule = make_schedule(
        frequency="daily",
        hour=0,
        created_at=timezone.now() - dt.timedelta(days=3),
        recipient_member_ids=[member.pk],
    )
    ((report_id, _),) = services.reports_claim_due()
    services.report_process(org=org, report_id=report_id)
    endpoint, _ = services.webhook_create(
        org=org, url="https://hooks.alpha.example/puna", events=["report.ready"]
    )
    services.webhook_emit(org=org, event="report.ready", event_id="report.ready:x", data={})
    delivery = endpoint.deliveries.get()
    return {
        "report-schedules": schedule.pk,
        "reports": report_id,
        "webhooks": endpoint.pk,
        "webhook-deliveries": delivery.pk,
    }


SCHEDULE = {
    "name": "Monday summary",
    "frequency": "weekly",
    "weekday": 0,
    "hour": 8,
    "recipient_emails": ["Principal@Alpha.example"],
}


def test_create_schedule_and_list_it(api_client: APIClient, member: Membership) -> None:
    response = api_client.post(
        "/api/v1/report-schedules",
        {**SCHEDULE, "recipient_member_ids": [member.pk]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["recipient_emails"] == ["principal@alpha.example"]
    assert body["recipient_member_ids"] == [member.pk]
    assert body["next_due_at"] is not None
    listed = api_client.get("/api/v1/report-schedules").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"frequency": "weekly", "weekday": None}, "weekday"),
        ({"frequency": "monthly", "day_of_month": None}, "day_of_month"),
        ({"hour": 24}, "hour"),
        ({"recipient_emails": []}, "recipient_emails"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_schedules_are_400_with_the_field(
    api_client: APIClient, change: dict[str, Any], field: str
) -> None:
    response = api_client.post("/api/v1/report-schedules", {**SCHEDULE, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_another_orgs_member_is_not_found_as_recipient(
    api_client: APIClient, other_owner: Membership
) -> None:
    response = api_client.post(
        "/api/v1/report-schedules",
        {**SCHEDULE, "recipient_member_ids": [other_owner.pk]},
        format="json",
    )
    assert response.status_code == 400
    assert "recipient_member_ids" in response.json()["errors"]


def test_update_schedule(api_client: APIClient, alpha: dict[str, int]) -> None:
    pk = alpha["report-schedules"]
    response = api_client.patch(
        f"/api/v1/report-schedules/{pk}",
        {"frequency": "monthly", "day_of_month": 31, "enabled": False},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["day_of_month"] == 31
    assert response.json()["next_due_at"] is None  # paused


def test_reports_list_retrieve_and_download(api_client: APIClient, alpha: dict[str, int]) -> None:
    pk = alpha["reports"]
    (row,) = api_client.get("/api/v1/reports").json()["results"]
    assert row["status"] == "sent"
    assert "stats" not in row
    detail = api_client.get(f"/api/v1/reports/{pk}").json()
    assert detail["stats"]["total"] == 0
    pdf = api_client.get(f"/api/v1/reports/{pk}/download")
    assert pdf["Content-Type"] == "application/pdf"
    assert "Alpha High School" in PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    csv = api_client.get(f"/api/v1/reports/{pk}/download?file=csv")
    assert csv.content.startswith(b"section,key,value")
    assert api_client.get(f"/api/v1/reports/{pk}/download?file=exe").status_code == 400


def test_send_now_and_preview(api_client: APIClient, alpha: dict[str, int]) -> None:
    pk = alpha["report-schedules"]
    preview = api_client.get(f"/api/v1/report-schedules/{pk}/preview")
    assert preview.status_code == 200
    assert "data:image/png;base64," in preview.json()["html"]
    sent = api_client.post(f"/api/v1/report-schedules/{pk}/send-now")
    assert sent.status_code == 202
    assert sent.json()["kind"] == "manual"
    assert sent.json()["status"] == "claimed"


def test_webhook_secret_is_shown_once(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example/puna", "events": ["alert.fired", "report.ready"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert WebhookEndpoint.objects.get().secret == created["secret"]
    assert "secret" not in api_client.get(f"/api/v1/webhooks/{created['id']}").json()
    assert "secret" not in api_client.get("/api/v1/webhooks").json()["results"][0]
    rotated = api_client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret").json()
    assert rotated["secret"] != created["secret"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://hooks.example/x", "events": ["alert.fired"]},
        {"url": "https://hooks.example/x", "events": ["everything"]},
        {"url": "https://user:pw@hooks.example/x", "events": ["alert.fired"]},
    ],
)
def test_bad_webhooks_are_400(api_client: APIClient, body: dict[str, Any]) -> None:
    assert api_client.post("/api/v1/webhooks", body, format="json").status_code == 400


def test_delivery_log(api_client: APIClient, alpha: dict[str, int]) -> None:
    rows = api_client.get(f"/api/v1/webhook-deliveries?endpoint={alpha['webhooks']}").json()
    assert [r["id"] for r in rows["results"]] == [alpha["webhook-deliveries"]]
    assert rows["results"][0]["event"] == "report.ready"


@pytest.mark.parametrize("path", ["report-schedules", "reports", "webhooks", "webhook-deliveries"])
def test_other_org_is_excluded_from_lists_and_gets_404(
    path: str, alpha: dict[str, int], api_client: APIClient, charlie_api: APIClient
) -> None:
    pk = alpha[path]
    assert pk in [r["id"] for r in api_client.get(f"/api/v1/{path}").json()["results"]]
    assert charlie_api.get(f"/api/v1/{path}").json()["results"] == []
    assert charlie_api.get(f"/api/v1/{path}/{pk}").status_code == 404
    assert charlie_api.patch(f"/api/v1/{path}/{pk}", {}, format="json").status_code in (404, 405)
    assert charlie_api.delete(f"/api/v1/{path}/{pk}").status_code in (404, 405)
    assert api_client.get(f"/api/v1/{path}/{pk}").status_code == 200


def test_other_org_cannot_act_on_alphas_objects(
    alpha: dict[str, int], charlie_api: APIClient, other_api_key_client: APIClient
) -> None:
    schedule, report = alpha["report-schedules"], alpha["reports"]
    for client in (charlie_api, other_api_key_client):
        assert client.post(f"/api/v1/report-schedules/{schedule}/send-now").status_code == 404
        assert client.get(f"/api/v1/report-schedules/{schedule}/preview").status_code == 404
        assert client.get(f"/api/v1/reports/{report}/download").status_code == 404
        assert client.post(f"/api/v1/webhooks/{alpha['webhooks']}/rotate-secret").status_code == 404
        assert client.delete(f"/api/v1/report-schedules/{schedule}").status_code == 404
    assert ReportSchedule.objects.filter(pk=schedule).exists()


def test_viewer_and_read_key_can_read_but_not_change(
    alpha: dict[str, int], org: Organization, make_member: Callable[..., Membership]
) -> None:
    viewer = make_member(org, Role.VIEWER, email="vic@alpha.example")
    viewer_client = APIClient()
    viewer_client.force_login(viewer.user)
    viewer_client.credentials(HTTP_X_PUNA_ORG=org.slug)
    _, raw = make_api_key(org, "read")
    read_key = APIClient()
    read_key.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    schedule = alpha["report-schedules"]
    for client in (viewer_client, read_key):
        assert client.get("/api/v1/report-schedules").status_code == 200
        assert client.get(f"/api/v1/reports/{alpha['reports']}/download").status_code == 200
        assert client.post("/api/v1/report-schedules", SCHEDULE, format="json").status_code == 403
        assert (
            client.patch(f"/api/v1/report-schedules/{schedule}", {"hour": 9}, format="json")
        ).status_code == 403
        assert client.delete(f"/api/v1/report-schedules/{schedule}").status_code == 403
        assert client.post(f"/api/v1/report-schedules/{schedule}/send-now").status_code == 403
        assert (
            client.post(
                "/api/v1/webhooks",
                {"url": "https://x.example", "events": ["alert.fired"]},
                format="json",
            ).status_code
            == 403
        )
    assert ReportSchedule.objects.get(pk=schedule).hour == 0


def test_write_key_can_manage_schedules(api_key_client: APIClient) -> None:
    assert (
        api_key_client.post("/api/v1/report-schedules", SCHEDULE, format="json").status_code == 201
    )
