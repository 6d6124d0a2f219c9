"""Secrets never reach the logs or error bodies: API keys (valid, revoked, in a header or a query
string), passwords, webhook secrets, METRICS_TOKEN, invitation and password-reset tokens, across
the request log, Django's 4xx/5xx lines, query logging and the problem+json answers."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.log import log_response
from django.utils.module_loading import import_string
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from monitoring.logging import REDACTED, redact_secrets
from reports import services as report_services
from reports.models import WebhookDelivery
from tenants import services
from tenants.models import Membership, Role
from tests.factories import PASSWORD, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()


METRICS_TOKEN = "mt-Secret-Metrics-Token-7f3a9c1e"


class Captured:
    """Everything the console handler would have written, in both of our formats."""

    def __init__(self) -> None:
        self.streams = {"json": io.StringIO(), "plain": io.StringIO()}

    def text(self) -> str:
        return "\n".join(stream.getvalue() for stream in self.streams.values())


LOGGING: dict[str, Any] = settings.LOGGING


def _formatter(name: str) -> logging.Formatter:
    config = dict(LOGGING["formatters"][name])
    factory = import_string(config.pop("()")) if "()" in config else logging.Formatter
    formatter: logging.Formatter = factory(**config)
    return formatter


@pytest.fixture
def logs() -> Iterator[Captured]:
    """Handlers built from settings.LOGGING's formatters and the console handler's filters."""
    captured = Captured()
    console = LOGGING["handlers"]["console"]
    filters = [import_string(LOGGING["filters"][name]["()"])() for name in console["filters"]]
    handlers = []
    for name, stream in captured.streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_formatter(name))
        for log_filter in filters:
            handler.addFilter(log_filter)
        handlers.append(handler)
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield captured
    finally:
        for handler in handlers:
            root.removeHandler(handler)


def _assert_absent(secret: str, captured: Captured, *bodies: bytes) -> None:
    assert secret not in captured.text()
    for body in bodies:
        assert secret.encode() not in body


def test_api_keys_never_reach_logs_or_error_bodies(
    logs: Captured, org: object, owner: Membership
) -> None:
    key, raw = make_api_key(owner.organization, "write")
    client = APIClient()
    bodies = [
        client.post(
            "/api/v1/feedback",
            {"text": "Ang init sa classroom"},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        ).content,
        # Wrong shape, extra parts, the key in the query string, unknown route, wrong method.
        client.get("/api/v1/feedback", HTTP_AUTHORIZATION=f"Bearer {raw} extra").content,
        client.get(f"/api/v1/feedback?api_key={raw}").content,
        client.get("/api/v1/nope", HTTP_AUTHORIZATION=f"Bearer {raw}").content,
        client.put("/api/v1/classify", HTTP_AUTHORIZATION=f"Bearer {raw}").content,
    ]
    services.api_key_revoke(api_key=key)
    revoked = client.get("/api/v1/feedback", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert revoked.status_code == 401
    bodies.append(revoked.content)
    secret_part = raw.rsplit("_", 1)[1]
    _assert_absent(raw, logs, *bodies)
    _assert_absent(secret_part, logs, *bodies)
    # Not vacuous: the 4xx lines were written (and the key's public prefix is still there to
    # tell keys apart).
    assert "Unauthorized: /api/v1/feedback" in logs.text()
    assert "Not Found: /api/v1/nope" in logs.text()


def test_a_server_error_line_masks_a_key_in_the_request(logs: Captured, org: object) -> None:
    # What Django's handler logs for a 500: the request's repr (with its query string) and the
    # exception. Built here because no view of ours fails on purpose.
    _, raw = make_api_key(org, "read")  # type: ignore[arg-type]
    request = RequestFactory().get(
        f"/api/v1/feedback?key={raw}", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    try:
        raise ValueError(f"could not parse {raw}")
    except ValueError as exc:
        log_response(
            "%s: %s",
            "Internal Server Error",
            request.get_full_path(),
            response=HttpResponse(status=500),
            request=request,
            exception=exc,
        )
    assert "Internal Server Error" in logs.text()
    assert REDACTED in logs.text()
    _assert_absent(raw, logs)
    _assert_absent(raw.rsplit("_", 1)[1], logs)


def test_passwords_never_reach_logs_or_pages(logs: Captured, owner: Membership) -> None:
    wrong = "Wrong-Password-For-Alice-93"
    client = Client()
    pages = [
        client.post("/login/", {"username": owner.user.email, "password": wrong}).content
        for _ in range(3)
    ]
    pages.append(
        client.post(
            "/signup/",
            {"email": "new@example.com", "password": "short", "org_name": "X"},
        ).content
    )
    ok = client.post("/login/", {"username": owner.user.email, "password": PASSWORD})
    assert ok.status_code == 302
    # Keep going until the sign-in limit answers 429, which Django logs as a warning.
    statuses = [
        Client().post("/login/", {"username": owner.user.email, "password": wrong}).status_code
        for _ in range(12)
    ]
    assert 429 in statuses
    assert "Too Many Requests: /login/" in logs.text()
    _assert_absent(wrong, logs, *pages)
    _assert_absent(PASSWORD, logs, *pages)


def test_webhook_secrets_never_reach_logs(
    logs: Captured, api_client: APIClient, owner: Membership
) -> None:
    created = api_client.post(
        "/api/v1/webhooks",
        # A closed local port: the delivery attempt fails and is logged in the delivery log.
        {"url": "http://127.0.0.1:9/hook", "events": ["report.ready"]},
        format="json",
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    rotated = api_client.post(f"/api/v1/webhooks/{created.json()['id']}/rotate-secret").json()
    new_secret = rotated["secret"]
    org = owner.organization
    # Even with query logging switched on, the SQL that stores the secret is not logged.
    connection.force_debug_cursor = True
    try:
        report_services.webhook_emit(
            org=org, event="report.ready", event_id="report.ready:1", data={}
        )
        delivery_id = WebhookDelivery.objects.for_org(org).get().pk
        report_services.webhook_attempt(org=org, delivery_id=delivery_id)
        bad = api_client.patch(
            f"/api/v1/webhooks/{created.json()['id']}",
            {"url": f"ftp://x/{new_secret}"},
            format="json",
        )
    finally:
        connection.force_debug_cursor = False
    assert bad.status_code == 400
    assert "Bad Request: /api/v1/webhooks/" in logs.text()
    for value in (secret, new_secret):
        _assert_absent(value, logs, bad.content)
        assert value.removeprefix("whsec_") not in logs.text()


def test_metrics_token_never_reaches_logs(logs: Captured, settings: Settings) -> None:
    settings.METRICS_TOKEN = METRICS_TOKEN
    client = Client()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}x")
    assert wrong.status_code == 401
    in_query = client.get(f"/metrics?token={METRICS_TOKEN}")
    assert in_query.status_code == 401
    # A line that quotes the token verbatim (a library echoing its configuration, say).
    logging.getLogger("puna.test").warning("metrics configured with %s", METRICS_TOKEN)
    assert "Unauthorized: /metrics" in logs.text()
    _assert_absent(METRICS_TOKEN, logs, wrong.content, in_query.content)


def test_one_time_tokens_in_urls_are_masked(logs: Captured, owner: Membership) -> None:
    _, token = services.invitation_create(
        org=owner.organization,
        email="ben@alpha.example",
        role=Role.VIEWER,
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    client = Client()
    assert client.put(f"/invitations/{token}/").status_code == 405
    assert client.get(f"/invitations/{token}x/").status_code == 404
    uid = urlsafe_base64_encode(force_bytes(owner.user.pk))
    reset = default_token_generator.make_token(owner.user)
    # A valid reset link is swapped for a token-free URL at once; a stale one is answered in
    # place (with any method).
    assert client.get(f"/password-reset/{uid}/{reset}/").status_code == 302
    stale = reset[:-4] + "0000"
    assert client.put(f"/password-reset/{uid}/{stale}/").status_code == 200
    text = logs.text()
    assert "Method Not Allowed (PUT): /invitations/" in text
    assert f"/invitations/{REDACTED}/" in text
    _assert_absent(token, logs)
    _assert_absent(reset, logs)
    _assert_absent(stale, logs)


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (
            "Authorization: Bearer puna_0123456789ab_" + "Q" * 40,
            f"Authorization: Bearer {REDACTED}",
        ),
        ("key=puna_0123456789ab_" + "Q" * 40 + "&x=1", f"key=puna_0123456789ab_{REDACTED}&x=1"),
        ("secret whsec_Abc-def_ghi123456 rotated", f"secret whsec_{REDACTED} rotated"),
        ("Not Found: /invitations/AbC-123_xyz/", f"Not Found: /invitations/{REDACTED}/"),
        ("GET /password-reset/MTc1/dig5ee-c0fb/", f"GET /password-reset/MTc1/{REDACTED}/"),
        ("GET /password-reset/sent/", "GET /password-reset/sent/"),
        ("POST feedback-list 201 3.2ms", "POST feedback-list 201 3.2ms"),
    ],
)
def test_secret_shapes_are_masked_and_ordinary_lines_kept(line: str, masked: str) -> None:
    assert redact_secrets(line) == masked
