"""Fixtures shared by the whole suite: two orgs, their members and their API clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tenants.api.base import SESSION_ORG_KEY
from tenants.models import Membership, Organization, Role, User
from tests.factories import make_api_key, make_membership, make_org


@pytest.fixture
def org(db: None) -> Organization:
    return make_org(name="Alpha High School", slug="alpha")


@pytest.fixture
def other_org(db: None) -> Organization:
    return make_org(name="Bravo Software", slug="bravo")


@pytest.fixture
def make_member(db: None) -> Callable[..., Membership]:
    def make(org: Organization, role: str = Role.VIEWER, **user_fields: Any) -> Membership:
        return make_membership(org, role, **user_fields)

    return make


@pytest.fixture
def owner(org: Organization, make_member: Callable[..., Membership]) -> Membership:
    return make_member(org, Role.OWNER, email="alice@alpha.example")


@pytest.fixture
def member(org: Organization, make_member: Callable[..., Membership]) -> Membership:
    """An analyst of `org`."""
    return make_member(org, Role.ANALYST, email="ana@alpha.example")


@pytest.fixture
def other_owner(other_org: Organization, make_member: Callable[..., Membership]) -> Membership:
    """Charlie owns the other org and must see nothing of `org`."""
    return make_member(other_org, Role.OWNER, email="charlie@bravo.example")


def _session_client(user: User, org: Organization) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_ORG_KEY] = org.slug
    session.save()
    return client


@pytest.fixture
def web_client(owner: Membership) -> Client:
    """Alice, owner of `org`, signed in to the dashboard."""
    return _session_client(owner.user, owner.organization)


@pytest.fixture
def api_client(owner: Membership) -> APIClient:
    """Alice's browser session talking to the API."""
    client = APIClient()
    client.force_login(owner.user)
    session = client.session
    session[SESSION_ORG_KEY] = owner.organization.slug
    session.save()
    return client


@pytest.fixture
def api_key_client(org: Organization) -> APIClient:
    """A read-write API key of `org`."""
    _, raw = make_api_key(org, "write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def other_api_key_client(other_org: Organization) -> APIClient:
    _, raw = make_api_key(other_org, "write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def login_as() -> Callable[[Membership], Client]:
    def login(membership: Membership) -> Client:
        return _session_client(membership.user, membership.organization)

    return login


@pytest.fixture(autouse=True)
def _empty_job_queue(request: pytest.FixtureRequest) -> None:
    """Tests that commit (transactional_db) start with no jobs left over from other tests, so a
    worker run only sees the jobs its own test queued."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")
