"""Reads about organizations, members and keys. Every read of org-owned rows takes the org."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from tenants.models import ApiKey, Invitation, Membership, Organization, User


def membership_get(*, user: User | AnonymousUser, org_slug: str) -> Membership | None:
    """The user's membership in the org with this slug, or None if they are not a member."""
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=org_slug)
        .first()
    )


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    """The orgs a user can switch between, by name."""
    return (
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
