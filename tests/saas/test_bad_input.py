"""Malformed requests get clear 4xx answers, never a 500."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_ten_megabyte_body_is_refused_before_parsing(api_client: APIClient) -> None:
    body = json.dumps({"name": "x" * (10 * 1024 * 1024)})
    response = api_client.generic("POST", "/api/v1/api-keys", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_invalid_json_is_400(api_client: APIClient) -> None:
    response = api_client.generic(
        "POST", "/api/v1/api-keys", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_wrong_types_and_missing_fields_get_field_messages(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/invitations", {"email": 42, "role": ["owner"]}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"email", "role"}
    response = api_client.post("/api/v1/invitations", {}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["email"] == ["This field is required."]
    response = api_client.post("/api/v1/api-keys", ["not", "an", "object"], format="json")
    assert response.status_code == 400


def test_non_numeric_ids_and_bad_slugs_are_404(api_client: APIClient) -> None:
    assert api_client.get("/api/v1/members/abc").status_code == 404
    assert api_client.get("/api/v1/members/99999999999999999999999").status_code == 404
    assert api_client.get("/o/..%2F..%2Fetc/").status_code == 404


def test_unsupported_media_type_is_415(api_client: APIClient) -> None:
    response = api_client.generic("POST", "/api/v1/api-keys", "name=x", content_type="text/plain")
    assert response.status_code == 415


def test_dashboard_forms_report_field_errors(web_client, org) -> None:
    response = web_client.post(f"/o/{org.slug}/members/", {"email": "not-an-email", "role": "boss"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"email", "role"}
