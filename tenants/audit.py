"""The audit trail: who did what to an organization's security-relevant objects.

Services (the write side) call `audit_record` inside their transaction, so an event exists if
and only if the change it describes was committed. Who acted and from where is taken from the
request: `org_view` and `OrgScopedViewSet` declare the actor with `audit_actor_set` when they
resolve the org, `OrgContextResetMiddleware` clears it, and the request id comes from the
monitoring context. A service that knows its actor (a worker acting for the person who asked)
passes `user=` instead. Outside any request the actor is "system".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import models

from monitoring.context import current_request_context
from tenants.models import ApiKey, AuditAction, AuditEvent, Organization, User

SYSTEM_LABEL = "system"


# How an API key actor's label starts (an e-mail address cannot: it has no space), so the actor
# stays recognisable after the key itself is deleted.
API_KEY_LABEL = "API key "


@dataclass(frozen=True)
class AuditActor:
    """Who is acting in this request: a signed-in person or an API key, and their address."""

    user: User | None = None
    api_key: ApiKey | None = None
    ip_address: str | None = None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"{API_KEY_LABEL}“{self.api_key.name}” (puna_{self.api_key.prefix}_…)"
        return SYSTEM_LABEL


_actor: ContextVar[AuditActor | None] = ContextVar("puna_audit_actor", default=None)


def audit_actor_set(*, user: Any, api_key: ApiKey | None) -> None:
    """Declare who acts for the rest of this request (called where the org is resolved)."""
    person = user if isinstance(user, User) and api_key is None else None
    current = _actor.get()
    ip_address = current.ip_address if current is not None else None
    _actor.set(AuditActor(user=person, api_key=api_key, ip_address=ip_address))


def audit_request_begin(*, ip_address: str | None) -> None:
    """A new request: nobody acts yet, from this address (set by OrgContextResetMiddleware)."""
    _actor.set(AuditActor(ip_address=ip_address))


def audit_actor_clear() -> None:
    _actor.set(None)


def audit_actor() -> AuditActor | None:
    return _actor.get()


@contextmanager
def acting_as(actor: AuditActor) -> Iterator[AuditActor]:
    """Act as `actor` inside the block (commands, tools), restoring the previous one."""
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def audit_record(
    *,
    org: Organization,
    action: AuditAction,
    target: models.Model | None = None,
    target_type: str = "",
    target_label: str = "",
    metadata: dict[str, Any] | None = None,
    user: User | None = None,
) -> AuditEvent:
    """Append one event to `org`'s trail; `user` overrides the request's actor when given."""
    actor = _actor.get() or AuditActor()
    if user is not None and user != actor.user:
        actor = AuditActor(user=user, ip_address=actor.ip_address)
    ctx = current_request_context()
    return AuditEvent.objects.create(
        organization=org,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label[:254],
        action=action,
        target_type=target_type or (target._meta.model_name or "" if target is not None else ""),
        target_id=str(target.pk) if target is not None and target.pk is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:254],
        metadata=metadata or {},
        ip_address=actor.ip_address,
        request_id=ctx.request_id if ctx is not None else "",
    )
