"""Writes for accounts, organizations, memberships, invitations and API keys.

Every function is keyword-only, does its own validation and raises Django's `ValidationError`
(with field names) for bad input, so the API and the dashboard report the same reasons.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from tenants.audit import audit_record
from tenants.context import dangerously_all_orgs, org_context
from tenants.models import (
    ApiKey,
    ApiKeyScope,
    AuditAction,
    Invitation,
    Membership,
    Organization,
    Plan,
    Role,
    User,
    normalize_email,
)
from tenants.selectors import api_key_by_prefix

API_KEY_PREFIX = "puna_"
_KEY_ALPHABET = string.ascii_letters + string.digits
_LAST_USED_RESOLUTION = timedelta(minutes=1)
RESERVED_SLUGS = frozenset({"admin", "api", "static", "media", "new", "settings", "o", "www"})


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- organizations ---------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50].strip("-") or "org"
    if base in RESERVED_SLUGS:
        base = f"{base}-org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def org_create(*, name: str, owner: User, plan: str = Plan.FREE) -> Organization:
    """Create an organization with `owner` as its first owner."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter the organization's name."})
    if plan not in Plan.values:
        raise ValidationError({"plan": f"Unknown plan {plan!r}; choose one of {Plan.values}."})
    org = Organization.objects.create(name=name[:120], slug=_unique_slug(name), plan=plan)
    with org_context(org):
        Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
        audit_record(
            org=org, action=AuditAction.ORG_CREATED, target=org, metadata={"plan": plan}, user=owner
        )
    return org


@transaction.atomic
def org_update(
    *, org: Organization, name: str | None = None, tz: str | None = None
) -> Organization:
    """Rename an org or change its timezone."""
    changes: dict[str, dict[str, str]] = {}
    if name is not None:
        if not name.strip():
            raise ValidationError({"name": "Enter the organization's name."})
        if org.name != name.strip()[:120]:
            changes["name"] = {"from": org.name, "to": name.strip()[:120]}
            org.name = name.strip()[:120]
    if tz is not None:
        import zoneinfo

        if tz not in zoneinfo.available_timezones():
            raise ValidationError({"timezone": f"Unknown timezone {tz!r}."})
        if org.timezone != tz:
            changes["timezone"] = {"from": org.timezone, "to": tz}
            org.timezone = tz
    if changes:
        org.save(update_fields=list(changes))
        audit_record(org=org, action=AuditAction.ORG_UPDATED, target=org, metadata=changes)
    return org


@transaction.atomic
def user_signup(
    *, email: str, password: str, org_name: str, full_name: str = ""
) -> tuple[User, Organization]:
    """Create a user and their first organization, which they own."""
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        # Sign-up is the one place where we must say the address is taken; the message does
        # not reveal anything a login attempt would not.
        raise ValidationError({"email": "An account with this email already exists."})
    user = User(email=email, full_name=full_name.strip())
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        raise ValidationError({"email": "An account with this email already exists."}) from exc
    return user, org_create(name=org_name, owner=user)


# --- memberships -----------------------------------------------------------------------------


def _lock_owners(org: Organization) -> int:
    """Count owners while holding their rows, so two demotions cannot both pass the guard."""
    return len(
        Membership.objects.for_org(org).filter(role=Role.OWNER).select_for_update().values("id")
    )


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor: Membership) -> Membership:
    """Change a member's role; only owners touch ownership, and the last owner stays owner."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {Role.values}."})
    touches_owner = Role.OWNER in (role, membership.role)
    if touches_owner and actor.role != Role.OWNER:
        raise ValidationError({"role": "Only an owner can grant or remove ownership."})
    if (
        membership.role == Role.OWNER
        and role != Role.OWNER
        and _lock_owners(membership.organization) <= 1
    ):
        raise ValidationError(
            {"role": "The last owner cannot be demoted; make someone else owner first."}
        )
    previous = membership.role
    if previous == role:
        return membership
    membership.role = role
    membership.save(update_fields=["role"])
    action = AuditAction.MEMBER_ROLE_CHANGED
    if role == Role.OWNER:
        action = AuditAction.OWNERSHIP_GRANTED
    elif previous == Role.OWNER:
        action = AuditAction.OWNERSHIP_REMOVED
    audit_record(
        org=membership.organization,
        action=action,
        target=membership,
        target_label=membership.user.email,
        metadata={"from": previous, "to": role},
        user=actor.user,
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Membership) -> None:
    """Remove a member (or let a member leave); the last owner can do neither."""
    if membership.role == Role.OWNER:
        if actor.role != Role.OWNER:
            raise ValidationError({"role": "Only an owner can remove an owner."})
        if _lock_owners(membership.organization) <= 1:
            raise ValidationError(
                {"role": "The last owner cannot leave; make someone else owner first."}
            )
    audit_record(
        org=membership.organization,
        action=AuditAction.MEMBER_LEFT if actor.pk == membership.pk else AuditAction.MEMBER_REMOVED,
        target=membership,
        target_label=membership.user.email,
        metadata={"role": membership.role},
        user=actor.user,
    )
    membership.delete()


# --- invitations -----------------------------------------------------------------------------


def invitation_create(
    *, org: Organization, email: str, role: str, invited_by: User, accept_url_base: str
) -> tuple[Invitation, str]:
    """Invite an email address to the org; returns the invitation and its one-time token."""
    email = normalize_email(email)
    errors: dict[str, str] = {}
    try:
        from django.core.validators import validate_email

        validate_email(email)
    except ValidationError:
        errors["email"] = "Enter a valid email address."
    if role not in Role.values:
        errors["role"] = f"Unknown role {role!r}; choose one of {Role.values}."
    if errors:
        raise ValidationError(errors)
    if Membership.objects.for_org(org).filter(user__email=email).exists():
        raise ValidationError({"email": "This person is already a member."})
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            organization=org,
            email=email,
            role=role,
            token_hash=_sha256(token),
            invited_by=invited_by,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        audit_record(
            org=org,
            action=AuditAction.MEMBER_INVITED,
            target=invitation,
            target_label=email,
            metadata={"role": role},
            user=invited_by,
        )
    accept_url = f"{accept_url_base.rstrip('/')}/invitations/{token}/"
    send_mail(
        subject=f"You are invited to {org.name} on Puna",
        message=(
            f"{invited_by.email} invited you to join {org.name} on Puna as {role}.\n\n"
            f"Accept the invitation: {accept_url}\n\n"
            f"The link works once and expires in {settings.INVITATION_TTL_DAYS} days."
        ),
        from_email=None,
        recipient_list=[email],
    )
    return invitation, token


def invitation_get_pending(*, token: str) -> Invitation | None:
    """The pending invitation behind a token, or None (unknown, used, revoked or expired)."""
    with dangerously_all_orgs("an invitation is found by its token, before its org is known"):
        invitation = (
            Invitation.objects.select_related("organization")
            .filter(token_hash=_sha256(token))
            .first()
        )
    if invitation is None or not invitation.is_pending:
        return None
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Accept an invitation: single use, before expiry, by the invited email's owner."""
    with dangerously_all_orgs("an invitation is found by its token, before its org is known"):
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("organization")
            .filter(token_hash=_sha256(token))
            .first()
        )
    if invitation is None or not invitation.is_pending:
        raise ValidationError({"token": "This invitation is invalid, used or expired."})  # nosec B105 # a message, not a password
    with org_context(invitation.organization):
        if normalize_email(user.email) != invitation.email:
            message = f"This invitation was sent to another address; sign in as {invitation.email}."
            raise ValidationError({"token": message})
        if Membership.objects.for_org(invitation.organization).filter(user=user).exists():
            raise ValidationError({"token": "You are already a member of this organization."})  # nosec B105 # a message, not a password
        membership = Membership.objects.create(
            organization=invitation.organization, user=user, role=invitation.role
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(
            org=invitation.organization,
            action=AuditAction.INVITATION_ACCEPTED,
            target=membership,
            target_label=user.email,
            metadata={"role": invitation.role, "invitation_id": invitation.pk},
            user=user,
        )
        return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation) -> None:
    """Withdraw a pending invitation; its link stops working."""
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            org=invitation.organization,
            action=AuditAction.INVITATION_REVOKED,
            target=invitation,
            target_label=invitation.email,
            metadata={"role": invitation.role},
        )


# --- API keys --------------------------------------------------------------------------------


def api_key_create(
    *,
    org: Organization,
    name: str,
    scope: str = ApiKeyScope.READ,
    created_by: User | None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `org`; returns the row and the full key, which is never shown again."""
    errors: dict[str, str] = {}
    name = name.strip()
    if not name:
        errors["name"] = "Give the key a name, e.g. where it is used."
    elif len(name) > 100:
        errors["name"] = "Use at most 100 characters."
    if scope not in ApiKeyScope.values:
        errors["scope"] = f"Unknown scope {scope!r}; choose one of {ApiKeyScope.values}."
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = "The expiry must be in the future."
    if errors:
        raise ValidationError(errors)
    prefix = secrets.token_hex(6)
    # Letters and digits only, so a double-click selects the whole key.
    secret = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(40))
    raw = f"{API_KEY_PREFIX}{prefix}_{secret}"
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            organization=org,
            name=name,
            prefix=prefix,
            key_hash=_sha256(raw),
            scope=scope,
            created_by=created_by,
            expires_at=expires_at,
        )
        audit_record(
            org=org,
            action=AuditAction.API_KEY_CREATED,
            target=api_key,
            metadata={
                "scope": scope,
                "expires_at": expires_at.isoformat() if expires_at is not None else None,
            },
            user=created_by,
        )
    return api_key, raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once; requests using it get 401 from now on."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            org=api_key.organization,
            action=AuditAction.API_KEY_REVOKED,
            target=api_key,
            metadata={"scope": api_key.scope},
        )
    return api_key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key matching `raw`, or None; unknown, revoked and expired look the same."""
    if not raw.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = raw[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret or len(prefix) > 16:
        return None
    api_key = api_key_by_prefix(prefix)
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _sha256(raw)):
        return None
    if not api_key.is_active:
        return None
    now = timezone.now()
    # Record use at minute resolution: a write per request would make keys a hot row.
    if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
        with org_context(api_key.organization):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
