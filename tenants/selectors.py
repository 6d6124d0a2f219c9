"""Reads about organizations, members and keys. Every read of org-owned rows takes the org."""

from __future__ import annotations

import datetime as dt
import functools

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import QuerySet

from tenants.context import dangerously_all_orgs, statement_sets_scope
from tenants.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User
from tenants.postgresql.base import fetchone_checking_health


def membership_get(*, user: User | AnonymousUser, org_slug: str) -> Membership | None:
    """The user's membership in the org with this slug, or None if they are not a member."""
    if not user.is_authenticated:
        return None
    # Resolving the org is what this is for, so it cannot run inside one.
    with dangerously_all_orgs("a person's membership is looked up before the org is active"):
        return (
            Membership.objects.select_related("organization")
            .filter(user=user, organization__slug=org_slug)
            .first()
        )


def membership_list_for_user(*, user: User) -> list[Membership]:
    """The orgs a user can switch between, by name."""
    with dangerously_all_orgs("a person's memberships span orgs (org switcher, home page)"):
        return list(
            Membership.objects.select_related("organization")
            .filter(user=user)
            .order_by("organization__name")
        )


def member_list(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_org(org).select_related("user").order_by("created_at", "id")


def invitation_list(*, org: Organization, pending_only: bool = True) -> QuerySet[Invitation]:
    qs = Invitation.objects.for_org(org).select_related("invited_by").order_by("-created_at")
    if pending_only:
        qs = qs.filter(accepted_at__isnull=True, revoked_at__isnull=True)
    return qs


def api_key_list(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_org(org).select_related("created_by").order_by("-created_at")


def owner_count(*, org: Organization) -> int:
    return Membership.objects.for_org(org).filter(role="owner").count()


def audit_event_list(
    *,
    org: Organization,
    action: str = "",
    actor: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[AuditEvent]:
    """The org's audit trail, newest first; `actor` matches part of the actor's label,
    [since, until) bounds the time."""
    qs = AuditEvent.objects.for_org(org).order_by("-created_at", "-id")
    if action:
        qs = qs.filter(action=action)
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


@functools.cache
def _api_key_by_prefix_sql() -> str:
    # Every concrete field of both models, in model order, so that from_db builds them
    # positionally; names come from the models, the prefix is a parameter.
    qn = connection.ops.quote_name
    key_columns = [f"k.{qn(str(f.column))}" for f in ApiKey._meta.concrete_fields]
    org_columns = [f"o.{qn(str(f.column))}" for f in Organization._meta.concrete_fields]
    return (
        f"SELECT {', '.join(key_columns + org_columns)}"  # noqa: S608  # nosec B608 # names from the models
        f" FROM puna_api_key_by_prefix(%s) AS k"
        f" JOIN {qn(Organization._meta.db_table)} AS o ON o.id = k.organization_id"
    )


def api_key_by_prefix(prefix: str) -> ApiKey | None:
    """The key with this prefix, its organization loaded, whatever its state; or None.

    Runs on every API request, before the org is known, so it is one prepared statement: the
    `puna_api_key_by_prefix` SQL function sees every org's keys for its own duration (tenants
    migration 0005) and leaves the connection's `puna.org_id` as it was, which spares the two
    round trips of switching the scope to all orgs and back; and it doubles as the connection's
    health check (`fetchone_checking_health`), which spares Django's `SELECT 1`. Equal to
    `ApiKey.objects.select_related("organization").filter(prefix=prefix).first()` in the
    all-orgs scope (tested).
    """
    with statement_sets_scope("the lookup function sees every org's keys for its own duration"):
        # The first statement of an API request, so it is also the connection's health check.
        row = fetchone_checking_health(_api_key_by_prefix_sql(), [prefix])
    if row is None:
        return None
    key_fields = ApiKey._meta.concrete_fields
    org_fields = Organization._meta.concrete_fields
    api_key = ApiKey.from_db(
        connection.alias, [f.attname for f in key_fields], row[: len(key_fields)]
    )
    api_key.organization = Organization.from_db(
        connection.alias, [f.attname for f in org_fields], row[len(key_fields) :]
    )
    return api_key
