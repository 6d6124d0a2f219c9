"""Regression tests for what schemathesis found: each answer matches /api/v1/schema.

Responses come from the WSGI app in-process (the test database, no server) and are checked by
schemathesis's own validator against the schema the app serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import Client
from rest_framework.test import APIClient

from feedback.services import FeedbackInput, feedback_ingest
from inference import services as inference_services
from reports import services as report_services
from saas.wsgi import application
from tenants import services as tenant_services
from tenants.models import Invitation, Membership, Organization
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(db: None) -> Iterator[Any]:
    # As Django's test client does: a request must not close the test's connection, which
    # holds the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema", application)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def key(org: Organization) -> dict[str, str]:
    _, raw = make_api_key(org, "write")
    return {"Authorization": f"Bearer {raw}"}


def call(schema: Any, path: str, method: str = "GET", **parts: Any) -> Any:
    """Send a request for `path` and fail unless the answer is what the schema says."""
    case = schema[path][method].Case(**parts)
    response = case.call()
    case.validate_response(response)
    return response


def test_every_operation_declares_its_problem_answers(schema: Any) -> None:
    raw = schema.raw_schema
    assert raw["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
    ]
    for path, operations in raw["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "403", "404", "413"):
                assert "application/problem+json" in responses[status]["content"], (path, method)
            if method == "post":
                assert {"409", "415", "422"} <= set(responses), (path, method)
            throttled = path != "/api/v1/usage/"
            assert ("429" in responses) == throttled, path
            if throttled:
                assert responses["429"]["headers"]["Retry-After"]["required"] is True


def test_errors_match_the_schema(schema: Any, key: dict[str, str]) -> None:
    assert call(schema, "/api/v1/feedback/{id}/", path_parameters={"id": 999}, headers=key)
    assert call(schema, "/api/v1/org/").status_code == 401
    assert call(schema, "/api/v1/members/", headers=key).status_code == 403
    response = call(
        schema, "/api/v1/feedback/", "POST", body={"text": 1, "colour": "x"}, headers=key
    )
    assert response.status_code == 400


def test_singleton_reads_are_one_object_not_a_page(
    schema: Any, key: dict[str, str], org: Organization
) -> None:
    feedback_ingest(org=org, items=[FeedbackInput(text="the canteen food is great")])
    assert call(schema, "/api/v1/org/", headers=key).json()["slug"] == org.slug
    stats = call(schema, "/api/v1/stats/", headers=key).json()
    assert stats["total"] == 1
    assert call(schema, "/api/v1/usage/", headers=key).json()["items"] == 1
    models = call(schema, "/api/v1/models/", headers=key).json()
    assert set(models) == {"base", "org"}


def test_classify_answers_200_as_documented(schema: Any, key: dict[str, str]) -> None:
    response = call(schema, "/api/v1/classify/", "POST", body={"texts": ["ok"]}, headers=key)
    assert response.status_code == 200
    assert "201" not in schema.raw_schema["paths"]["/api/v1/classify/"]["post"]["responses"]


def test_label_set_examples_are_a_plain_list(
    schema: Any, key: dict[str, str], org: Organization
) -> None:
    label_set = inference_services.label_set_create(
        org=org, name="topics", labels=["wifi", "food"], created_by=None
    )
    inference_services.example_add(
        org=org, label_set=label_set, text="slow wifi", label="wifi", created_by=None
    )
    response = call(
        schema,
        "/api/v1/label-sets/{id}/examples/",
        path_parameters={"id": label_set.pk},
        headers=key,
    )
    assert [row["text"] for row in response.json()] == ["slow wifi"]


def test_empty_query_values_are_documented_and_mean_any(
    schema: Any, key: dict[str, str], org: Organization
) -> None:
    feedback_ingest(org=org, items=[FeedbackInput(text="the canteen food is great")])
    parameters = schema.raw_schema["paths"]["/api/v1/feedback/"]["get"]["parameters"]
    assert all(p["allowEmptyValue"] for p in parameters if p["in"] == "query")
    response = call(schema, "/api/v1/feedback/", query={"source": "", "q": ""}, headers=key)
    assert len(response.json()["results"]) == 1
    assert call(schema, "/api/v1/stats/", query={"interval": ""}, headers=key).status_code == 200


@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "201", "1.5", "1_0", "\uff12"])
def test_page_size_out_of_range_or_not_a_number_is_400(
    api_key_client: APIClient, page_size: str
) -> None:
    response = api_key_client.get("/api/v1/feedback", {"page_size": page_size})
    assert response.status_code == 400
    assert response.json()["errors"] == {"page_size": ["Give a whole number from 1 to 200."]}


def test_page_size_limits_are_in_the_schema(schema: Any, api_key_client: APIClient) -> None:
    parameters = schema.raw_schema["paths"]["/api/v1/feedback/"]["get"]["parameters"]
    (page_size,) = [p for p in parameters if p["name"] == "page_size"]
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}
    assert api_key_client.get("/api/v1/feedback?page_size=200").status_code == 200


def test_keys_and_invitations_without_a_creator_match_the_schema(
    schema: Any, org: Organization, owner: Membership
) -> None:
    make_api_key(org, "read", name="made by a command")
    tenant_services.invitation_create(
        org=org,
        email="new@alpha.example",
        role="viewer",
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    Invitation.objects.filter(organization=org).update(invited_by=None)
    client = Client()
    client.force_login(owner.user)
    session: dict[str, Any] = {
        "cookies": {"sessionid": client.cookies["sessionid"].value},
        "headers": {"X-Puna-Org": org.slug},
    }
    keys = call(schema, "/api/v1/api-keys/", **session).json()["results"]
    assert [k["created_by"] for k in keys] == [None]
    invitations = call(schema, "/api/v1/invitations/", **session).json()["results"]
    assert [i["invited_by"] for i in invitations] == [None]


def test_download_of_a_report_still_being_built_is_a_problem_409(
    schema: Any, key: dict[str, str], org: Organization
) -> None:
    made = report_services.schedule_create(
        org=org,
        name="Weekly",
        frequency="weekly",
        weekday=0,
        hour=8,
        recipient_emails=["head@alpha.example"],
    )
    report = report_services.report_send_now(schedule=made)
    response = call(
        schema, "/api/v1/reports/{id}/download/", path_parameters={"id": report.pk}, headers=key
    )
    assert response.status_code == 409
    assert response.json()["code"] == "report_not_ready"
