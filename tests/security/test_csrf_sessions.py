"""CSRF and sessions: every mutating route refuses a signed-in browser's request without a CSRF
token, the API's session path enforces CSRF too (API keys need none, and a bad key never falls
back to the session), sign-in rotates the session, sign-out ends it, and production cookies are
Secure, HttpOnly and SameSite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tenants.api.base import SESSION_ORG_KEY, OrgScopedViewSet
from tenants.models import Membership
from tests.factories import PASSWORD, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    # Sign-in is rate limited per address; other tests' attempts must not count here.
    cache.clear()


ROOT = Path(__file__).resolve().parents[2]
UNSAFE = ("post", "put", "patch", "delete")
CSRF_FAILED = "CSRF verification failed"
# Any 32 letters and digits form a valid (unmasked) CSRF secret for cookie and header alike.
TOKEN = "PunaCsrfTestToken0123456789abcde"
# Routes no browser session reaches or that change nothing, with why. Anything else that is
# csrf_exempt fails the walk.
EXEMPT_PREFIXES = (
    "api/",  # DRF views: CSRF is enforced by SessionAuthentication instead (tested below).
    "ops/admin/",  # Django's admin, CSRF-protected by Django itself.
)


def _walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append((prefix + str(pattern.pattern), pattern.callback))
    return found


_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _concrete(route: str, slug: str) -> str:
    """A URL for the route: the org's slug, id 1, a dummy token. CSRF is checked before the view
    runs, so the objects need not exist."""

    def fill(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if name == "org_slug":
            return slug
        if kind == "int":
            return "1"
        if name == "kind":
            return "pdf"
        return "dummy-token"

    return "/" + _CONVERTER.sub(fill, route).replace("^", "").replace("$", "")


def _browser_routes() -> list[tuple[str, Any]]:
    return [
        (route, callback)
        for route, callback in _walk(get_resolver().url_patterns)
        if not route.startswith(EXEMPT_PREFIXES)
    ]


def _signed_in(owner: Membership, *, enforce: bool = True) -> Client:
    client = Client(enforce_csrf_checks=enforce, raise_request_exception=False)
    client.force_login(owner.user)
    session = client.session
    session[SESSION_ORG_KEY] = owner.organization.slug
    session.save()
    return client


def test_no_browser_route_is_csrf_exempt() -> None:
    exempt = [route for route, cb in _browser_routes() if getattr(cb, "csrf_exempt", False)]
    assert exempt == []


def test_every_mutating_browser_route_refuses_a_request_without_a_csrf_token(
    owner: Membership,
) -> None:
    slug = owner.organization.slug
    forged = _signed_in(owner)
    genuine = _signed_in(owner)
    genuine.cookies[settings.CSRF_COOKIE_NAME] = TOKEN
    refused = 0
    accepts_post: set[str] = set()
    # Sign-out last: after it the genuine client is signed out.
    routes = sorted(_browser_routes(), key=lambda rc: rc[0] == "logout/")
    for route, _callback in routes:
        url = _concrete(route, slug)
        for method in UNSAFE:
            without = getattr(forged, method)(url)
            assert without.status_code == 403, (method, url, without.status_code)
            assert CSRF_FAILED in without.content.decode(), (method, url)
            refused += 1
        # The same POST with a token shows that the 403 above was CSRF's, not the view's, and
        # which routes take a POST at all (405: the view refuses the method).
        with_token = genuine.post(url, HTTP_X_CSRFTOKEN=TOKEN)
        assert CSRF_FAILED not in with_token.content.decode(), url
        if with_token.status_code != 405:
            accepts_post.add(f"/{route}")
    assert "_auth_user_id" in forged.session  # the forged requests never signed anyone out
    # The walk saw the routes that matter (not an empty URLconf or a broken filter).
    for expected in (
        "/o/<slug:org_slug>/api-keys/",
        "/o/<slug:org_slug>/api-keys/<int:key_id>/revoke/",
        "/o/<slug:org_slug>/members/<int:membership_id>/role/",
        "/o/<slug:org_slug>/members/<int:membership_id>/remove/",
        "/o/<slug:org_slug>/models/versions/<int:version_id>/activate/",
        "/o/<slug:org_slug>/settings/",
        "/o/<slug:org_slug>/webhooks/",
        "/logout/",
        "/login/",
        "/signup/",
        "/invitations/<str:token>/",
    ):
        assert expected in accepts_post, expected
    assert len(routes) >= 45, len(routes)
    # Shown with `pytest -s`.
    print(
        f"\nCSRF: {len(routes)} routes, {refused} unsafe requests refused, "
        f"{len(accepts_post)} routes take a POST"
    )


def test_sign_in_form_refuses_a_post_without_a_token(owner: Membership) -> None:
    # Login CSRF: a forged sign-in would put the victim in the attacker's account.
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": owner.user.email, "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


# --- the API ---------------------------------------------------------------------------------


def _api_routes() -> list[str]:
    """The API's data routes (every OrgScopedViewSet; the schema and docs pages only read)."""
    return [
        route
        for route, callback in _walk(get_resolver().url_patterns)
        if route.startswith("api/v1/")
        and issubclass(getattr(callback, "cls", object), OrgScopedViewSet)
    ]


def test_api_session_requests_without_a_csrf_token_are_refused(owner: Membership) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner.user)
    client.credentials(HTTP_X_PUNA_ORG=owner.organization.slug)
    checked = 0
    for route in _api_routes():
        url = "/" + route.replace("^", "").replace("$", "").replace("/?", "")
        url = url.replace("(?P<pk>[^/.]+)", "1")
        for method in UNSAFE:
            response = getattr(client, method)(url, {}, format="json")
            # DRF authenticates (and so checks CSRF) before it looks at the method or object.
            assert response.status_code == 403, (method, url, response.status_code)
            assert "CSRF" in response.json()["detail"], (method, url)
            checked += 1
    assert checked >= 100, checked


def test_api_key_requests_need_no_csrf_token_and_set_no_session(org: Any) -> None:
    _, raw = make_api_key(org, "write")
    client = APIClient(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/feedback",
        {"text": "Ang bagal ng wifi"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 201
    assert settings.SESSION_COOKIE_NAME not in response.cookies


def test_a_bad_key_does_not_fall_back_to_the_session(owner: Membership) -> None:
    # A page that can make the browser send an Authorization header cannot ride the session.
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner.user)
    response = client.post(
        "/api/v1/api-keys",
        {"name": "sneaky"},
        format="json",
        HTTP_AUTHORIZATION="Bearer puna_000000000000_nope",
        HTTP_X_PUNA_ORG=owner.organization.slug,
    )
    assert response.status_code == 401


# --- sessions ----------------------------------------------------------------------------------


def test_sign_in_rotates_the_session_key(owner: Membership) -> None:
    client = Client()
    client.get("/login/")
    session = client.session
    session["before"] = "sign-in"
    session.save()
    before = session.session_key
    response = client.post("/login/", {"username": owner.user.email, "password": PASSWORD})
    assert response.status_code == 302
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"


def test_sign_out_ends_the_session_everywhere_it_was_copied(owner: Membership) -> None:
    client = Client()
    client.post("/login/", {"username": owner.user.email, "password": PASSWORD})
    stolen = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.get(f"/o/{owner.organization.slug}/").status_code == 200

    assert client.post("/logout/").status_code == 302
    assert not Session.objects.filter(session_key=stolen).exists()
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = stolen
    response = replay.get(f"/o/{owner.organization.slug}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_sign_out_by_get_is_refused(owner: Membership) -> None:
    # A link or image on another site must not be able to sign people out.
    client = Client()
    client.force_login(owner.user)
    assert client.get("/logout/").status_code == 405
    assert "_auth_user_id" in client.session


def test_production_cookies_are_secure_httponly_and_samesite() -> None:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ("
        "'SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', "
        "'CSRF_COOKIE_SECURE', 'CSRF_COOKIE_SAMESITE', 'SECURE_SSL_REDIRECT', "
        "'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER')}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PUNA_", "DEBUG"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "saas.settings",
            "PUNA_ENV": "production",
            "SECRET_KEY": "k" * 10 + "8Tq#xP2!vL9@mZ4$wR7^nB1&cY6*jH3(fD5)gS0",
            "ALLOWED_HOSTS": "puna.example.com",
            "EMAIL_URL": "smtp+tls://puna:pw@smtp.example.com:587",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }
