"""The current organization of this request, task or command: set in exactly one place.

`activate_org` is the single door through which code declares which org it is acting for. The
API base viewset, the dashboard's `org_view` and tasks call it; a later PostgreSQL row-level
security backstop will write its per-transaction setting here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenants.models import Organization

_current_org: ContextVar[Organization | None] = ContextVar("puna_current_org", default=None)


def activate_org(org: Organization) -> None:
    _current_org.set(org)


def deactivate_org() -> None:
    _current_org.set(None)


def current_org() -> Organization | None:
    return _current_org.get()


@contextmanager
def org_context(org: Organization) -> Iterator[Organization]:
    """Act for `org` inside the block (tasks, commands), restoring the previous org after."""
    token = _current_org.set(org)
    try:
        yield org
    finally:
        _current_org.reset(token)


@contextmanager
def acting_for_org(org_id: int) -> Iterator[Organization]:
    """For tasks and commands, which receive ids: load the org and act for it in the block."""
    from tenants.models import Organization

    with org_context(Organization.objects.get(pk=org_id)) as org:
        yield org
