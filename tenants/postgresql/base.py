"""`ENGINE = "tenants.postgresql"`: Django's PostgreSQL backend that keeps `puna.org_id` right.

It installs `tenants.rls.apply_scope` on every connection and forgets the value the server
holds whenever the server may have changed it behind our back (a new connection, a rollback, a
rollback to a savepoint, a close), so the next statement re-asserts the current scope.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from tenants.rls import apply_scope


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The value of puna.org_id this session holds; None = unknown, re-assert before use.
        self.rls_scope: str | None = None
        self.execute_wrappers.insert(0, apply_scope)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        self.rls_scope = None
        return super().get_new_connection(conn_params)

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
