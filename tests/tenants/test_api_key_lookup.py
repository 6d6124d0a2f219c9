"""The API-key lookup that starts every API request: one prepared statement that sees every
org's keys on its own, leaves the connection's `puna.org_id` alone and doubles as the
connection's health check."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection
from django.db.models import Model

from feedback.models import Feedback
from tenants.context import dangerously_all_orgs, org_context, without_org
from tenants.models import ApiKey, Organization
from tenants.selectors import api_key_by_prefix
from tests.factories import make_api_key, make_org


def _server_scope() -> str:
    row = connection.connection.execute("SELECT current_setting('puna.org_id', true)").fetchone()
    return str(row[0])


def _values(instance: Model) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


@pytest.mark.django_db
def test_the_lookup_equals_the_orm_and_leaves_the_connections_scope_alone(
    org: Organization, other_org: Organization
) -> None:
    key, _ = make_api_key(org)
    with org_context(other_org):
        Feedback.objects.count()  # the connection now holds other_org's id
    assert _server_scope() == str(other_org.pk)

    with without_org():
        found = api_key_by_prefix(key.prefix)
    # Nothing was switched on the way: the server and the tracker still hold other_org's id.
    assert _server_scope() == str(other_org.pk)
    assert getattr(connection, "rls_scope", None) == str(other_org.pk)
    with dangerously_all_orgs("test: the ORM's answer to compare with"):
        expected = ApiKey.objects.select_related("organization").get(prefix=key.prefix)

    assert found is not None
    assert _values(found) == _values(expected)
    assert _values(found.organization) == _values(expected.organization)
    assert not found._state.adding
    assert found._state.db == "default"
    with without_org():
        assert api_key_by_prefix("nosuchprefix") is None


@pytest.mark.django_db
def test_only_the_function_sees_past_the_scope(org: Organization, other_org: Organization) -> None:
    key, _ = make_api_key(org)
    with org_context(other_org), connection.cursor() as cursor:
        # The same table read directly in other_org's scope: row-level security hides the key.
        cursor.execute("SELECT count(*) FROM tenants_apikey WHERE prefix = %s", [key.prefix])
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM puna_api_key_by_prefix(%s)", [key.prefix])
        assert cursor.fetchone()[0] == 1
        # ...and the function gives the caller its own value back when it returns.
        cursor.execute("SELECT current_setting('puna.org_id', true)")
        assert cursor.fetchone()[0] == str(other_org.pk)


def _kill_this_connection() -> int:
    """Terminate the server side of Django's connection (as a server restart would); return its
    pid."""
    pid = int(connection.connection.info.backend_pid)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    return pid


@pytest.mark.django_db(transaction=True)
def test_a_dead_connection_at_the_start_of_a_request_is_replaced_by_the_lookup() -> None:
    org = make_org(name="Health Check School", slug="health-check")
    key, _ = make_api_key(org)
    connection.ensure_connection()
    dead = _kill_this_connection()
    # As at the start of a request (request_started): the health check is due again.
    connection.close_if_unusable_or_obsolete()
    with without_org():
        found = api_key_by_prefix(key.prefix)
    assert found is not None
    assert found.pk == key.pk
    assert connection.connection.info.backend_pid != dead
    assert connection.health_check_done  # type: ignore[attr-defined]  # Django's, not in the stubs


@pytest.mark.django_db(transaction=True)
def test_after_the_check_a_dead_connection_is_an_error_not_a_silent_retry() -> None:
    org = make_org(name="Checked School", slug="checked")
    key, _ = make_api_key(org)
    connection.ensure_connection()
    # This request already used the connection.
    connection.health_check_done = True  # type: ignore[attr-defined]  # Django's, not in the stubs
    _kill_this_connection()
    with without_org(), pytest.raises(OperationalError):
        api_key_by_prefix(key.prefix)
    connection.close()
