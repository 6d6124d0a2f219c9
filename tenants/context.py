"""The current organization of this request, task or command: set in exactly one place.

`activate_org` is the single door through which code declares which org it is acting for. The
API base viewset, the dashboard's `org_view` and tasks call it (or `org_context` /
`acting_for_org`, which are the same door with a scope).

Alongside the org object this module keeps the *database scope* that PostgreSQL row-level
security reads: the org's id, nothing (`""`, the policies show no org-owned row), or `"all"`
inside `dangerously_all_orgs()`. `tenants.rls` copies that value into the connection's
`puna.org_id` setting before every statement; no other code writes it, so the database and
Python can never disagree about whose rows are visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenants.models import Organization

# The value of the `puna.org_id` setting meaning "every org" (see tenants/rls.py).
ALL_ORGS = "all"
NO_ORG = ""
# Not a value of the setting: the statements of the block set their own (see
# `statement_sets_scope`), so the connection's value is left as it is.
STATEMENT_SETS_SCOPE = None

_current_org: ContextVar[Organization | None] = ContextVar("puna_current_org", default=None)
_db_scope: ContextVar[str | None] = ContextVar("puna_db_scope", default=NO_ORG)


def activate_org(org: Organization) -> None:
    _current_org.set(org)
    _db_scope.set(str(org.pk))


def deactivate_org() -> None:
    _current_org.set(None)
    _db_scope.set(NO_ORG)


def current_org() -> Organization | None:
    return _current_org.get()


def db_scope() -> str | None:
    """What row-level security lets this context see: an org id, `""` (nothing) or `"all"`;
    None inside `statement_sets_scope()`."""
    return _db_scope.get()


@contextmanager
def org_context(org: Organization) -> Iterator[Organization]:
    """Act for `org` inside the block (tasks, commands), restoring the previous org after."""
    token = _current_org.set(org)
    scope_token = _db_scope.set(str(org.pk))
    try:
        yield org
    finally:
        _db_scope.reset(scope_token)
        _current_org.reset(token)


@contextmanager
def without_org() -> Iterator[None]:
    """Act for no org inside the block (each request starts so), restoring the previous state
    after: row-level security shows no org-owned row until an org is activated."""
    token = _current_org.set(None)
    scope_token = _db_scope.set(NO_ORG)
    try:
        yield
    finally:
        _db_scope.reset(scope_token)
        _current_org.reset(token)


def streamed_for_org[T](org: Organization, chunks: Iterable[T]) -> Iterator[T]:
    """Produce each chunk of a streamed response acting for `org`.

    The server reads a streamed body after the view and the middleware have returned, when the
    request no longer acts for any org; each chunk (and the queries it runs) is produced inside
    `org_context`, and the context is left again before the chunk is handed over.
    """
    iterator = iter(chunks)
    while True:
        with org_context(org):
            chunk = next(iterator, _END)
        if chunk is _END:
            return
        yield chunk  # type: ignore[misc]


_END = object()


@contextmanager
def acting_for_org(org_id: int) -> Iterator[Organization]:
    """For tasks and commands, which receive ids: load the org and act for it in the block."""
    from tenants.models import Organization

    with org_context(Organization.objects.get(pk=org_id)) as org:
        yield org


@contextmanager
def dangerously_all_orgs(reason: str) -> Iterator[None]:
    """Let the block read and write every org's rows, past row-level security.

    Only for code that is cross-org by nature and filters by something else than the org:
    finding an API key by its prefix before its org is known, a person's memberships across
    orgs, schedulers and pruning that scan every org, staff-only pages, the admin, migrations
    and operator commands. `reason` says which, for the reader; grep for this name to review
    every crossing. An `org_context` nested inside narrows back to that one org.
    """
    del reason  # Documentation at the call site; nothing to do with it at run time.
    token = _db_scope.set(ALL_ORGS)
    try:
        yield
    finally:
        _db_scope.reset(token)


@contextmanager
def statement_sets_scope(reason: str) -> Iterator[None]:
    """Run the block's statements under whatever `puna.org_id` the connection holds, because
    each of them sets the value it needs itself: a SQL function declared with
    `SET puna.org_id = ...`, such as `puna_api_key_by_prefix` (tenants migration 0005).

    It saves the round trip that would first write the setting, on the hot path of every API
    request. Never for a plain query: it would run under whatever the connection last served
    (another org, or every org). Like `dangerously_all_orgs`, grep for it to review each use.
    """
    del reason  # Documentation at the call site.
    token = _db_scope.set(STATEMENT_SETS_SCOPE)
    try:
        yield
    finally:
        _db_scope.reset(token)
