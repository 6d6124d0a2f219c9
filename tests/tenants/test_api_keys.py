"""API keys: created once, stored hashed, authenticate the API, revocable and expirable."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services
from tenants.models import ApiKey, Organization
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def _bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_key_is_prefixed_recognisable_and_only_its_hash_is_stored(org: Organization) -> None:
    api_key, raw = make_api_key(org)
    assert raw.startswith(f"puna_{api_key.prefix}_")
    assert len(raw) > 50
    assert raw not in str(ApiKey.objects.filter(pk=api_key.pk).values().get())
    assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest()


def test_key_authenticates_the_api_and_records_use(org: Organization) -> None:
    api_key, raw = make_api_key(org)
    response = _bearer(raw).get("/api/v1/org")
    assert response.status_code == 200
    assert response.json()["slug"] == org.slug
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_unknown_revoked_and_expired_keys_get_the_same_401(org: Organization) -> None:
    revoked, revoked_raw = make_api_key(org)
    services.api_key_revoke(api_key=revoked)
    expired, expired_raw = make_api_key(org)
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _, valid_raw = make_api_key(org)
    tampered = valid_raw[:-1] + ("A" if valid_raw[-1] != "A" else "B")
    bodies = []
    for raw in (revoked_raw, expired_raw, "puna_000000000000_nope", tampered, "garbage", "puna_"):
        response = _bearer(raw).get("/api/v1/org")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        bodies.append(response.content)
    assert len(set(bodies)) == 1


def test_missing_credentials_get_401(db: None) -> None:
    response = APIClient().get("/api/v1/org")
    assert response.status_code == 401


def test_read_only_key_cannot_write_and_keys_cannot_manage_the_org(org: Organization) -> None:
    _, read_raw = make_api_key(org, "read")
    _, write_raw = make_api_key(org, "write")
    assert _bearer(read_raw).get("/api/v1/org").status_code == 200
    for raw in (read_raw, write_raw):
        assert _bearer(raw).get("/api/v1/api-keys").status_code == 403
        assert _bearer(raw).get("/api/v1/members").status_code == 403
        assert (
            _bearer(raw).post("/api/v1/api-keys", {"name": "x"}, format="json").status_code == 403
        )


def test_owner_creates_key_in_dashboard_sees_it_once_and_revokes_it(
    org: Organization, web_client: Client
) -> None:
    response = web_client.post(
        f"/o/{org.slug}/api-keys/", {"name": "Survey form", "scope": "write"}
    )
    assert response.status_code == 200
    raw = response.context["new_key"]
    assert raw.startswith("puna_")
    assert _bearer(raw).get("/api/v1/org").status_code == 200
    listing = web_client.get(f"/o/{org.slug}/api-keys/").content.decode()
    assert "Survey form" in listing
    assert raw not in listing
    api_key = ApiKey.objects.get(name="Survey form")
    web_client.post(f"/o/{org.slug}/api-keys/{api_key.pk}/revoke/")
    assert _bearer(raw).get("/api/v1/org").status_code == 401


def test_api_creates_key_with_expiry_and_shows_it_once(
    org: Organization, api_client: APIClient
) -> None:
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    response = api_client.post(
        "/api/v1/api-keys", {"name": "CI", "scope": "read", "expires_at": expires}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith(f"puna_{body['prefix']}_")
    listed = api_client.get(f"/api/v1/api-keys/{body['id']}").json()
    assert "key" not in listed
    assert api_client.delete(f"/api/v1/api-keys/{body['id']}").status_code == 204
    assert _bearer(body["key"]).get("/api/v1/org").status_code == 401


def test_api_key_creation_reports_field_errors(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/api-keys",
        {"name": "", "scope": "admin", "expires_at": "yesterday"},
        format="json",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert set(response.json()["errors"]) == {"name", "scope", "expires_at"}
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = api_client.post("/api/v1/api-keys", {"name": "x", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["errors"]


def test_operator_commands_print_only_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_org", name="Cebu Tech", owner_email="Boss@cebu.example", password="x" * 12)
    slug = capsys.readouterr().out.strip()
    assert slug == "cebu-tech"
    call_command("create_api_key", org=slug, name="ops", scopes="read")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("puna_")
    assert _bearer(raw).get("/api/v1/org").json()["slug"] == "cebu-tech"
    call_command("seed_demo", key_only=True)
    first = capsys.readouterr().out.strip()
    call_command("seed_demo", key_only=True)
    second = capsys.readouterr().out.strip()
    assert _bearer(second).get("/api/v1/org").json()["slug"] == "demo-school"
    assert _bearer(first).get("/api/v1/org").status_code == 401
    assert Organization.objects.filter(slug="demo-school").count() == 1
