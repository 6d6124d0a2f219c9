"""Reads about organizations, members and keys. Every read of org-owned rows takes the org."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from tenants.context import dangerously_all_orgs
from tenants.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User


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
