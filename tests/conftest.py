"""Fixtures shared by the whole suite: two orgs, their members and their API clients.

The suite runs as the app's database role, as production does, so row-level security binds
every test: pytest-django creates and migrates the test database as DATABASE_URL's user (the
owner; a superuser in CI, which bypasses RLS), then `django_db_setup` below creates the
`puna_app_test` role on the same server, grants it what the app role gets (plus TRUNCATE, which
Django's flush between transactional tests needs) and reconnects as it for the whole session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import pytest_django
from django.db import DatabaseError, connections
from django.test import Client
from rest_framework.test import APIClient

from tenants import rls
from tenants.api.base import SESSION_ORG_KEY
from tenants.context import dangerously_all_orgs
from tenants.models import Membership, Organization, Role, User
from tests.factories import make_api_key, make_membership, make_org

APP_ROLE = "puna_app_test"
APP_ROLE_PASSWORD = "puna-app-test-password"
# DATABASE_URL's user and password: the owner, who created and migrated the test database.
_owner_credentials: dict[str, str] = {}


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: pytest_django.DjangoDbBlocker
) -> Iterator[None]:
    """Run the suite as a role that neither owns the tables nor bypasses RLS."""
    connection = connections["default"]
    owner = {key: connection.settings_dict[key] for key in ("USER", "PASSWORD")}
    _owner_credentials.update(owner)
    with django_db_blocker.unblock():
        try:
            rls.grant_app_role(
                connection, role=APP_ROLE, password=APP_ROLE_PASSWORD, allow_truncate=True
            )
        except DatabaseError:
            # Another test session on this server created the role at the same moment.
            rls.grant_app_role(
                connection, role=APP_ROLE, password=APP_ROLE_PASSWORD, allow_truncate=True
            )
        connection.close()
    connection.settings_dict.update(USER=APP_ROLE, PASSWORD=APP_ROLE_PASSWORD)
    try:
        yield
    finally:
        # The owner drops the test database (or keeps it, with --reuse-db).
        with django_db_blocker.unblock():
            connection.close()
        connection.settings_dict.update(owner)


def pytest_configure(config: pytest.Config) -> None:
    # Fault tests run in every `pytest` run (CI); `-m faults` selects just them (`make faults`).
    config.addinivalue_line(
        "markers", "faults: injects a real fault (database restart, Redis down, killed worker)"
    )


@pytest.fixture
def db_owner() -> Callable[[str], None]:
    """Run SQL as the test database's owner on a separate connection that commits at once, for
    the rare test that changes the schema (the app's role may not)."""

    def run(sql: str) -> None:
        params = connections["default"].get_connection_params()
        params.update(user=_owner_credentials["USER"], password=_owner_credentials["PASSWORD"])
        params.pop("cursor_factory", None)
        with psycopg.connect(**params, autocommit=True) as owner:
            owner.execute(sql.encode())

    return run


@pytest.fixture(autouse=True)
def _test_body_sees_every_org() -> Iterator[None]:
    """A test sets up and inspects several orgs' rows directly, as an operator would. What it
    exercises starts from no org as in production: each request (OrgContextResetMiddleware),
    each worker run (tests/jobs.py) and whatever runs inside `without_org()`."""
    with dangerously_all_orgs("tests set up and inspect every org's rows"):
        yield


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
