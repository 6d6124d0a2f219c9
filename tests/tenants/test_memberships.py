"""Invitations, roles, switching orgs, and the last-owner rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import services
from tenants.models import Invitation, Membership, Organization, Role, User
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _invite_link() -> str:
    match = re.search(r"https?://[^/]+(/invitations/[\w-]+/)", str(mail.outbox[-1].body))
    assert match is not None
    return match.group(1)


def test_signup_invite_accept_then_role_limits(client: Client) -> None:
    client.post(
        "/signup/",
        {"email": "owner@school.ph", "password": "a-long-passphrase", "org_name": "Rizal HS"},
    )
    org = Organization.objects.get(name="Rizal HS")
    response = client.post(
        f"/o/{org.slug}/members/", {"email": "Viewer@School.ph", "role": "viewer"}
    )
    assert response.status_code == 302
    link = _invite_link()

    invitee = Client()
    assert invitee.get(link).status_code == 200  # anonymous: asked to sign in first
    make_user(email="viewer@school.ph")
    invitee.force_login(User.objects.get(email="viewer@school.ph"))
    assert invitee.post(link).status_code == 302
    membership = Membership.objects.get(organization=org, user__email="viewer@school.ph")
    assert membership.role == Role.VIEWER

    # Single use.
    assert invitee.post(link).status_code == 404
    # A viewer reads but cannot change anything.
    assert invitee.get(f"/o/{org.slug}/members/").status_code == 200
    page = invitee.get(f"/o/{org.slug}/members/").content.decode()
    assert "Send invitation" not in page
    assert "Remove" not in page
    refused = invitee.post(f"/o/{org.slug}/members/", {"email": "x@example.com", "role": "owner"})
    assert refused.status_code == 403
    owner_membership = Membership.objects.get(organization=org, role=Role.OWNER)
    refused = invitee.post(f"/o/{org.slug}/members/{owner_membership.pk}/role/", {"role": "viewer"})
    assert refused.status_code == 403
    assert invitee.get(f"/o/{org.slug}/api-keys/").status_code == 200
    assert (
        invitee.post(f"/o/{org.slug}/api-keys/", {"name": "x", "scope": "write"}).status_code == 403
    )
    assert (
        invitee.post(f"/o/{org.slug}/settings/", {"name": "Hacked", "timezone": "UTC"}).status_code
        == 403
    )
    org.refresh_from_db()
    assert org.name == "Rizal HS"


def test_invitation_must_be_accepted_by_the_invited_address(
    owner: Membership, client: Client
) -> None:
    _, token = services.invitation_create(
        org=owner.organization,
        email="ben@example.com",
        role="analyst",
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    intruder = make_user(email="eve@example.com")
    with pytest.raises(ValidationError, match="another address"):
        services.invitation_accept(token=token, user=intruder)
    assert not Membership.objects.filter(user=intruder).exists()


def test_expired_and_revoked_invitations_do_not_work(owner: Membership) -> None:
    ben = make_user(email="ben@example.com")
    invitation, token = services.invitation_create(
        org=owner.organization,
        email=ben.email,
        role="analyst",
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(ValidationError, match="invalid, used or expired"):
        services.invitation_accept(token=token, user=ben)
    invitation2, token2 = services.invitation_create(
        org=owner.organization,
        email=ben.email,
        role="analyst",
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    services.invitation_revoke(invitation=invitation2)
    with pytest.raises(ValidationError):
        services.invitation_accept(token=token2, user=ben)


def test_last_owner_cannot_leave_or_be_demoted(owner: Membership, web_client: Client) -> None:
    slug = owner.organization.slug
    web_client.post(f"/o/{slug}/members/{owner.pk}/role/", {"role": "admin"})
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    web_client.post(f"/o/{slug}/leave/")
    assert Membership.objects.filter(pk=owner.pk).exists()
    with pytest.raises(ValidationError, match="last owner"):
        services.membership_remove(membership=owner, actor=owner)


def test_with_two_owners_one_may_step_down(
    owner: Membership, make_member: Callable[..., Membership]
) -> None:
    second = make_member(owner.organization, Role.OWNER)
    services.membership_change_role(membership=owner, role=Role.ADMIN, actor=second)
    owner.refresh_from_db()
    assert owner.role == Role.ADMIN
    with pytest.raises(ValidationError, match="last owner"):
        services.membership_change_role(membership=second, role=Role.VIEWER, actor=second)


def test_admin_cannot_grant_ownership(
    owner: Membership, make_member: Callable[..., Membership]
) -> None:
    admin = make_member(owner.organization, Role.ADMIN)
    viewer = make_member(owner.organization, Role.VIEWER)
    with pytest.raises(ValidationError, match="Only an owner"):
        services.membership_change_role(membership=viewer, role=Role.OWNER, actor=admin)


def test_user_in_two_orgs_switches_between_them(owner: Membership, other_org: Organization) -> None:
    Membership.objects.create(organization=other_org, user=owner.user, role=Role.VIEWER)
    client = Client()
    client.force_login(owner.user)
    page = client.get(f"/o/{owner.organization.slug}/").content.decode()
    assert other_org.name in page  # in the switcher
    assert client.get(f"/o/{other_org.slug}/").status_code == 200
    # Home remembers the last org visited.
    assert client.get("/")["Location"] == f"/o/{other_org.slug}/"


def test_members_api_changes_roles_and_refuses_viewers(
    owner: Membership, api_client: APIClient, make_member: Callable[..., Membership], login_as
) -> None:
    viewer = make_member(owner.organization, Role.VIEWER)
    response = api_client.patch(f"/api/v1/members/{viewer.pk}", {"role": "analyst"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "analyst"
    bad = api_client.patch(f"/api/v1/members/{viewer.pk}", {"role": "emperor"}, format="json")
    assert bad.status_code == 400
    assert "role" in bad.json()["errors"]

    viewer_api = APIClient()
    viewer_api.force_login(make_member(owner.organization, Role.VIEWER).user)
    viewer_api.credentials(HTTP_X_PUNA_ORG=owner.organization.slug)
    assert viewer_api.get("/api/v1/members").status_code == 200
    refused = viewer_api.patch(f"/api/v1/members/{viewer.pk}", {"role": "owner"}, format="json")
    assert refused.status_code == 403
    refused = viewer_api.post("/api/v1/invitations", {"email": "x@example.com"}, format="json")
    assert refused.status_code == 403
