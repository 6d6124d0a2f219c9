"""PostgreSQL row-level security: the backstop behind `for_org()` and `OrgScopedViewSet`.

Every table with an `organization_id` column gets `ENABLE` + `FORCE ROW LEVEL SECURITY` and a
policy that shows (and accepts) only rows of the org named by the connection setting
`puna.org_id`, or every row when it is `all`. With the setting empty or unset a query sees no
org-owned row at all, so a query that forgets its org filter returns nothing from other orgs
(or anything, outside an org context) instead of everything. Rows whose nullable
`organization_id` is NULL (base models, platform-wide monitoring rows) are shared: readable in
any context, writable only in the all-orgs scope.

**Which tables.** `apply_policies()` finds them in the catalog (every table of the schema with
an `organization_id` column), not in a list, and runs after every `migrate` (the
`post_migrate` receiver in `tenants.apps`), so a new org-owned table is covered by the same
`migrate` that creates it, whatever app or migration number it has. It is idempotent and
touches a table only when something is missing. `tests/tenants/test_rls.py` fails if any such
table lacks FORCE RLS or the policy.

**Where the setting comes from.** Only from `tenants.context` (`activate_org`, `org_context`,
`acting_for_org`, `dangerously_all_orgs`), through `db_scope()`. `apply_scope` is an execute
wrapper that the database backend (`tenants.postgresql`) installs on every connection: before
each statement it compares the context's scope with the value this connection is known to
hold and, only when they differ, sends `set_config('puna.org_id', <scope>, false)` first.

**Why a session value re-asserted per statement, not `SET LOCAL` per transaction.** Django
runs most queries in autocommit mode, where every statement is its own transaction: a
transaction-local value would be gone before the statement it is meant to guard. So the value
is session-level, and correctness rests on the tracker (`DatabaseWrapper.rls_scope`) never
claiming a value the server does not hold. Only four things change the server's value: our own
`set_config`, a ROLLBACK (which undoes a `set_config` made inside the transaction), a ROLLBACK
TO SAVEPOINT (likewise) and a new connection. The backend forgets the tracked value on each of
the last three, so the next statement re-asserts it. Consequences:

- A persistent connection (CONN_MAX_AGE) reused by the next request, job or thread cannot run a
  statement under the previous org: the first statement of the next request re-asserts that
  request's scope (empty until its org is resolved). This is stronger than resetting at the end
  of each request, which would miss work that never passes a request boundary (a worker moving
  from one job to the next) and cost a round trip per request even when nothing changed.
- Inside an `atomic` block, switching org contexts switches visibility from the next statement
  on, and a rolled-back transaction can never leave a stale value behind.
- The extra round trip happens only when the scope changes on a connection; it goes through the
  raw driver connection, so it is not counted in query logs. An API-key request changes it at
  most once (to its org, when the connection last served another): the key lookup goes through
  the `puna_api_key_by_prefix` SQL function, which carries its own all-orgs value for the call
  and is run under `statement_sets_scope()` (the one case where the wrapper leaves the value
  alone). A dashboard page changes it up to five times, because the membership lookups run in
  the all-orgs scope between org statements.

Only code that talks to the driver below Django's cursor (`cursor.cursor.copy()`) bypasses
the wrapper; it must run a statement through Django's cursor first, in the same scope. Nothing
here does any more: PostgreSQL refuses `COPY FROM` into a table under RLS anyway, and bulk
ingestion inserts from arrays (`feedback.services._insert_rows`) through Django's cursor.

**What it is not.** Any session may write `puna.org_id`; RLS here protects against a forgotten
filter, not against arbitrary SQL. The app's role must not own the tables (an owner can turn
RLS off), be a superuser, or have BYPASSRLS: `enforcement_problems()` says whether it does, and
`grant_app_role()` (run by `manage.py db_app_role` as the owner) sets such a role up.

**Migrations** run as the owner. FORCE makes the policies apply to the owner too, so a data
migration touching org-owned tables must wrap its body in `dangerously_all_orgs()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.pq import TransactionStatus

from tenants.context import db_scope

SETTING = "puna.org_id"
ORG_COLUMN = "organization_id"
POLICY = "puna_org_isolation_v2"
SHARED_READ_POLICY = "puna_shared_read_v1"
POLICY_PREFIX = "puna_"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Inlined by the planner; STABLE, so `organization_id = puna_rls_org_id()` can use an index.
# A malformed value (anything but digits or 'all') means no org, never an error.
FUNCTIONS_SQL = f"""
CREATE OR REPLACE FUNCTION puna_rls_org_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN current_setting('{SETTING}', true) ~ '^[0-9]{{1,18}}$'
                THEN current_setting('{SETTING}', true)::bigint END
$$;
CREATE OR REPLACE FUNCTION puna_rls_all_orgs() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('{SETTING}', true) = 'all', false)
$$;
"""
# Each function in a scalar subquery: PostgreSQL evaluates it once per statement (an InitPlan)
# instead of once per row, which halved the dashboard's aggregates over an org's rows (v1 called
# them bare). The value is a parameter, so `organization_id = (SELECT ...)` still uses indexes.
ISOLATION = f"({ORG_COLUMN} = (SELECT puna_rls_org_id()) OR (SELECT puna_rls_all_orgs()))"


@dataclass(frozen=True)
class OrgTable:
    name: str
    nullable: bool
    rls_enabled: bool
    rls_forced: bool
    policies: frozenset[str]

    @property
    def wanted_policies(self) -> frozenset[str]:
        return frozenset({POLICY, SHARED_READ_POLICY} if self.nullable else {POLICY})

    @property
    def complete(self) -> bool:
        return self.rls_enabled and self.rls_forced and self.policies == self.wanted_policies


def org_tables(connection: BaseDatabaseWrapper) -> list[OrgTable]:
    """Every table of the current schema with an `organization_id` column, and its RLS state."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, NOT a.attnotnull, c.relrowsecurity, c.relforcerowsecurity,
                   coalesce(array_agg(p.polname) FILTER (WHERE p.polname IS NOT NULL), '{}')
            FROM pg_class c
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped
            LEFT JOIN pg_policy p ON p.polrelid = c.oid
            WHERE c.relnamespace = current_schema()::regnamespace
              AND c.relkind IN ('r', 'p')
            GROUP BY c.relname, a.attnotnull, c.relrowsecurity, c.relforcerowsecurity
            ORDER BY c.relname
            """,
            [ORG_COLUMN],
        )
        return [
            OrgTable(name, nullable, enabled, forced, frozenset(policies))
            for name, nullable, enabled, forced, policies in cursor.fetchall()
        ]


def apply_policies(connection: BaseDatabaseWrapper) -> list[str]:
    """Give every org-owned table FORCE RLS and the isolation policy; return the tables changed.

    Idempotent: a table already complete is not touched (no lock taken), so it runs after every
    `migrate`. Must run as the tables' owner when something is missing.
    """
    tables = [t for t in org_tables(connection) if not t.complete]
    if not tables:
        return []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(FUNCTIONS_SQL)
        for table in tables:
            name = quote(table.name)
            if not table.rls_enabled:
                cursor.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            if not table.rls_forced:
                cursor.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            for stale in table.policies - table.wanted_policies:
                if stale.startswith(POLICY_PREFIX):
                    cursor.execute(f"DROP POLICY {quote(stale)} ON {name}")
            if POLICY not in table.policies:
                cursor.execute(
                    f"CREATE POLICY {quote(POLICY)} ON {name} "
                    f"USING {ISOLATION} WITH CHECK {ISOLATION}"
                )
            if table.nullable and SHARED_READ_POLICY not in table.policies:
                cursor.execute(
                    f"CREATE POLICY {quote(SHARED_READ_POLICY)} ON {name} FOR SELECT "
                    f"USING ({ORG_COLUMN} IS NULL)"
                )
    return [t.name for t in tables]


def apply_policies_after_migrate(*, using: str = "default", **kwargs: Any) -> None:
    """`post_migrate` receiver (connected once, for the tenants app)."""
    from django.db import connections

    apply_policies(connections[using])


# --- The connection setting ---------------------------------------------------------------------


def apply_scope(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Execute wrapper: make the connection's `puna.org_id` match the context, then execute."""
    connection = context["connection"]
    wanted = db_scope()
    if wanted is None:  # statement_sets_scope(): the statement brings its own value
        return execute(sql, params, many, context)
    if connection.rls_scope != wanted and _can_set(connection):
        set_scope(connection, wanted)
    return execute(sql, params, many, context)


def _can_set(connection: Any) -> bool:
    """Not in a failed transaction: there only ROLLBACK (TO SAVEPOINT) runs, and our statement
    would fail in its place. The rollback makes the tracked value unknown anyway."""
    return not connection.needs_rollback and (
        connection.connection.info.transaction_status != TransactionStatus.INERROR
    )


def set_scope(connection: Any, value: str) -> None:
    """Write the setting on the raw driver connection (not logged as a query) and track it."""
    with connection.wrap_database_errors:
        connection.connection.execute("SELECT set_config(%s, %s, false)", [SETTING, value])
    connection.rls_scope = value


# --- Roles --------------------------------------------------------------------------------------


def enforcement_problems(connection: BaseDatabaseWrapper) -> list[str]:
    """Why RLS does not bind the role this connection uses (empty when it does)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.rolname, r.rolsuper, r.rolbypassrls,
                   (SELECT count(*) FROM pg_class c
                     WHERE c.relnamespace = current_schema()::regnamespace
                       AND c.relkind IN ('r', 'p')
                       AND pg_has_role(current_user, c.relowner, 'USAGE'))
            FROM pg_roles r WHERE r.rolname = current_user
            """
        )
        name, superuser, bypass, owned = cursor.fetchone()
    problems = []
    if superuser:
        problems.append(f"the database role {name!r} is a superuser, which bypasses RLS")
    if bypass:
        problems.append(f"the database role {name!r} has BYPASSRLS")
    if owned:
        problems.append(
            f"the database role {name!r} owns (or can act as the owner of) {owned} tables and "
            f"could turn RLS off; connect as a separate app role (README: row-level security)"
        )
    return problems


def grant_app_role(
    connection: BaseDatabaseWrapper,
    *,
    role: str,
    password: str | None,
    allow_truncate: bool = False,
) -> None:
    """Create (or update) the app's login role and grant it data access, nothing more.

    Run as the tables' owner after `migrate`. The role gets SELECT/INSERT/UPDATE/DELETE on the
    schema's tables and use of its sequences, now and for tables the owner creates later
    (`ALTER DEFAULT PRIVILEGES`); it owns nothing, cannot create tables, is neither superuser
    nor BYPASSRLS, and is not a member of the owner role. `allow_truncate` is for the test
    suite only: Django empties tables between transactional tests with TRUNCATE, which RLS does
    not filter, so production must not grant it.
    """
    if not ROLE_NAME.match(role):
        raise ValueError(f"{role!r} is not a plain lower-case role name.")
    quote = connection.ops.quote_name
    ident = quote(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database(), current_schema()")
        owner, database, schema = cursor.fetchone()
        if owner == role:
            raise ValueError(f"The app role {role!r} must not be the owner connecting here.")
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, pg_has_role(%s, %s, 'MEMBER') "
            "FROM pg_roles WHERE rolname = %s",
            [role, owner, role],
        )
        existing = cursor.fetchone()
        if existing is None:
            # The password is bound client-side (Django's psycopg cursor), quoted as a literal.
            cursor.execute(
                f"CREATE ROLE {ident} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                + ("PASSWORD %s" if password else ""),
                [password] if password else None,
            )
        else:
            superuser, bypass, member = existing
            if superuser or bypass or member:
                raise ValueError(
                    f"The role {role!r} is a superuser, has BYPASSRLS or is a member of "
                    f"{owner!r}: row-level security would not bind it."
                )
            if password:
                cursor.execute(f"ALTER ROLE {ident} LOGIN PASSWORD %s", [password])
        table_privileges = "SELECT, INSERT, UPDATE, DELETE" + (
            ", TRUNCATE" if allow_truncate else ""
        )
        for statement in _grants(
            quote(database), quote(schema), quote(owner), ident, table_privileges
        ):
            cursor.execute(statement)


def _grants(
    database: str, schema: str, owner: str, role: str, table_privileges: str
) -> Iterable[str]:
    yield f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}"
    yield f"GRANT USAGE ON SCHEMA {schema} TO {role}"
    yield f"GRANT {table_privileges} ON ALL TABLES IN SCHEMA {schema} TO {role}"
    yield f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
    yield f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role}"
    default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT"
    yield f"{default} {table_privileges} ON TABLES TO {role}"
    yield f"{default} USAGE, SELECT ON SEQUENCES TO {role}"
    yield f"{default} EXECUTE ON FUNCTIONS TO {role}"
