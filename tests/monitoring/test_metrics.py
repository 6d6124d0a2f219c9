"""/metrics: Prometheus text behind a bearer token."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from monitoring.recorder import recorder
from monitoring.services import monitoring_flush

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"


@pytest.fixture
def metrics_token(settings: Settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def _scrape(client: Client) -> dict[str, list[Sample]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.content.decode())
    }


def test_metrics_are_disabled_without_a_configured_token(
    client: Client, settings: Settings
) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.usefixtures("metrics_token")
@pytest.mark.parametrize(
    "header", [None, "", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}"]
)
def test_metrics_refuse_a_missing_or_wrong_token(client: Client, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert b"puna_" not in response.content


@pytest.mark.usefixtures("metrics_token")
def test_metrics_parse_and_carry_request_inference_and_job_families(
    client: Client, api_client: APIClient
) -> None:
    api_client.get("/api/v1/members")
    api_client.get("/api/v1/members")
    recorder.record_inference(model="sentiment", version="v7", duration_ms=42.0)
    monitoring_flush()
    # Inserted on the test's connection: procrastinate's defer() would commit outside the
    # test transaction.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name) VALUES ('test-q', 'x.y')"
        )

    families = _scrape(client)

    requests = families["puna_http_request_duration_seconds"]
    labels = {"route": "member-list", "method": "GET", "status": "2xx"}
    mine = [s for s in requests if all(s.labels.get(k) == v for k, v in labels.items())]
    count = next(s.value for s in mine if s.name.endswith("_count"))
    inf = next(s.value for s in mine if s.labels.get("le") == "+Inf")
    assert count == inf == 2
    bounds = [s for s in mine if s.name.endswith("_bucket")]
    values = [s.value for s in bounds]
    assert values == sorted(values)  # cumulative
    assert len(bounds) == 19  # 18 exported bounds + Inf

    inference = families["puna_inference_duration_seconds"]
    ok = [
        s
        for s in inference
        if s.labels.get("model") == "sentiment" and s.labels.get("le") == "0.064"
    ]
    assert ok[0].value == 1  # 42 ms <= 64 ms

    jobs = families["puna_background_jobs"]
    assert ({"queue": "test-q", "status": "todo"}, 1.0) in [(s.labels, s.value) for s in jobs]
    assert families["puna_route_alerts_open"][0].value == 0


@pytest.mark.usefixtures("metrics_token")
def test_metrics_have_no_org_or_raw_path_labels(client: Client, api_client: APIClient) -> None:
    api_client.get("/api/v1/members/12345")
    monitoring_flush()
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "12345" not in text
    assert "org" not in {
        label for f in text_string_to_metric_families(text) for s in f.samples for label in s.labels
    }
