"""Sign-up, sign-in and password reset."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from tenants.models import Membership, Organization, Role, User
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()


def test_signup_creates_user_and_org_owned_by_them(client: Client) -> None:
    response = client.post(
        "/signup/",
        {
            "email": "Coordinator@School.PH",
            "password": "a-long-passphrase",
            "org_name": "San Roque NHS",
        },
    )
    user = User.objects.get(email="coordinator@school.ph")
    org = Organization.objects.get(name="San Roque NHS")
    assert response.status_code == 302
    assert response["Location"] == f"/o/{org.slug}/"
    assert org.plan == "free"
    assert Membership.objects.get(user=user, organization=org).role == Role.OWNER
    assert user.password.startswith("argon2")
    assert client.get(f"/o/{org.slug}/").status_code == 200


def test_signup_reports_field_errors(client: Client) -> None:
    make_user(email="taken@example.com")
    response = client.post("/signup/", {"email": "taken@example.com", "password": "short"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "org_name" in errors
    assert "password" in errors
    response = client.post(
        "/signup/", {"email": "taken@example.com", "password": "a-long-passphrase", "org_name": "X"}
    )
    assert "already exists" in str(response.context["form"].errors["email"])
    assert User.objects.count() == 1


def test_signup_rejects_common_password_and_keeps_nothing(client: Client) -> None:
    response = client.post(
        "/signup/", {"email": "new@example.com", "password": "password123", "org_name": "New"}
    )
    assert "password" in response.context["form"].errors
    assert not User.objects.filter(email="new@example.com").exists()
    assert not Organization.objects.filter(name="New").exists()


def test_login_with_email_and_logout(client: Client) -> None:
    make_user(email="ana@example.com")
    response = client.post("/login/", {"username": "ANA@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_attempts_are_rate_limited_without_revealing_accounts(
    client: Client, settings: object
) -> None:
    make_user(email="ana@example.com")
    # Counting windows are fixed minutes, so 21 quick attempts may straddle one boundary but
    # one of the two windows still sees more than 10 of them.
    statuses = [
        client.post("/login/", {"username": "ana@example.com", "password": "wrong"}).status_code
        for _ in range(21)
    ]
    assert statuses[:10] == [200] * 10
    assert 429 in statuses
    limited = client.post("/login/", {"username": "nobody@example.com", "password": "wrong"})
    assert limited.status_code == 429
    assert limited["Retry-After"]
    assert b"nobody@example.com" not in limited.content


def test_password_reset_sends_a_working_link_and_says_the_same_for_unknown_emails(
    client: Client,
) -> None:
    make_user(email="ana@example.com")
    known = client.post("/password-reset/", {"email": "ana@example.com"})
    unknown = client.post("/password-reset/", {"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/password-reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    form_page = client.get(link.group(1), follow=True)
    post_url = form_page.redirect_chain[-1][0]
    done = client.post(
        post_url, {"new_password1": "brand-new-passphrase", "new_password2": "brand-new-passphrase"}
    )
    assert done.status_code == 302
    assert client.login(username="ana@example.com", password="brand-new-passphrase")


def test_password_reset_is_rate_limited(client: Client) -> None:
    statuses = [
        client.post("/password-reset/", {"email": "ana@example.com"}).status_code for _ in range(11)
    ]
    assert statuses[:5] == [302] * 5
    assert 429 in statuses
    assert len(mail.outbox) == 0
