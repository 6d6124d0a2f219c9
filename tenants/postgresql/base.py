"""`ENGINE = "tenants.postgresql"`: Django's PostgreSQL backend that keeps `puna.org_id` right.

It installs `tenants.rls.apply_scope` on every connection and forgets the value the server
holds whenever the server may have changed it behind our back (a new connection, a rollback, a
rollback to a savepoint, a close), so the next statement re-asserts the current scope.

It also offers `prepared_cursor()` for the few statements every API request runs, and
`fetchone_checking_health()`, which lets the first of them stand in for Django's per-request
connection health check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError, connections
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.backends.utils import CursorWrapper
from psycopg.pq import Format

from tenants.rls import apply_scope

# Statements run through prepared_cursor() are prepared on their first execution. Django's own
# cursors bind parameters client-side and are never prepared, whatever this says.
PREPARE_THRESHOLD = 0


class DatabaseWrapper(base.DatabaseWrapper):
    # Django's own, which django-stubs leaves out (annotations only: no new attributes).
    health_check_enabled: bool
    health_check_done: bool
    _prepare_cursor: Callable[[Any], CursorWrapper]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The value of puna.org_id this session holds; None = unknown, re-assert before use.
        self.rls_scope: str | None = None
        self.execute_wrappers.insert(0, apply_scope)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        self.rls_scope = None
        connection = super().get_new_connection(conn_params)
        connection.prepare_threshold = PREPARE_THRESHOLD
        return connection

    def prepared_cursor(self) -> CursorWrapper:
        """A cursor whose statements PostgreSQL parses and plans once per connection.

        Django binds parameters client-side, so the server parses and plans every statement
        anew (a third of the time of the API's INSERT). This cursor binds them server-side and
        prepares each statement on first use; it is otherwise Django's cursor (execute wrappers
        with the RLS scope and the query timer, error translation, health check, query log).
        For hot statements with a fixed text only: psycopg keeps at most 100 per connection.
        Server-side binding is stricter about types: give each placeholder one (`%s::jsonb`)
        where PostgreSQL cannot infer it.
        """
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = psycopg.Cursor(self.connection)
            # As Django's create_cursor(): timestamps in the connection's time zone.
            loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, Format.TEXT)
            if self.timezone != loader.timezone:
                register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)

    def fetchone_checking_health(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row of a read-only statement (prepared) that is also this request's
        connection health check.

        With CONN_HEALTH_CHECKS Django sends `SELECT 1` on a reused connection before the first
        statement of each request: a round trip on every API request. When that first statement
        is a read, it can be the check itself: if it fails because the connection is dead
        (a server restart, a dropped idle connection), reconnect and run it once more, as the
        check would have; reading twice changes nothing. Any other failure is raised as is.
        """
        due = self.connection is not None and self.health_check_enabled
        due = due and not self.health_check_done and not self.in_atomic_block
        if due:
            self.health_check_done = True  # this statement is the check
        try:
            return self._fetchone_prepared(sql, params)
        except (OperationalError, InterfaceError):
            if not due or self.is_usable():
                raise
        self.close()
        return self._fetchone_prepared(sql, params)  # on a new connection

    def _fetchone_prepared(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        with self.prepared_cursor() as cursor:
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone()
        return row

    # Forgotten after the fact: whether or not the rollback succeeds, the value is unknown.
    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]  # private, not in the stubs
        finally:
            self.rls_scope = None

    def _savepoint_rollback(self, sid: str) -> None:
        try:
            super()._savepoint_rollback(sid)  # type: ignore[misc]
        finally:
            self.rls_scope = None

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self.rls_scope = None


def _wrapper(using: str) -> DatabaseWrapper:
    connection = connections[using]
    if not isinstance(connection, DatabaseWrapper):
        raise TypeError(f"DATABASES[{using!r}] does not use the tenants.postgresql engine")
    return connection


def prepared_cursor(using: str = "default") -> CursorWrapper:
    """`DatabaseWrapper.prepared_cursor()` of the connection `using`."""
    return _wrapper(using).prepared_cursor()


def fetchone_checking_health(
    sql: str, params: Sequence[Any], using: str = "default"
) -> tuple[Any, ...] | None:
    """`DatabaseWrapper.fetchone_checking_health()` on the connection `using`."""
    return _wrapper(using).fetchone_checking_health(sql, params)
