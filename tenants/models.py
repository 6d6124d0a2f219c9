"""Accounts, organizations and the base every org-owned model inherits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils.timezone import now


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=normalize_email(username or ""))


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively everywhere, so store them lowercased."""
    return email.strip().lower()


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can use the operators' admin site.")
    date_joined = models.DateTimeField(default=now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


class Plan(models.TextChoices):
    FREE = "free", "Free"
    TEAM = "team", "Team"
    BUSINESS = "business", "Business"


class Organization(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.FREE)
    timezone = models.CharField(max_length=64, default="Asia/Manila")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name


class OrgQuerySet[M: models.Model](models.QuerySet[M]):
    def for_org(self, org: Organization) -> Self:
        return self.filter(organization=org)


class OrgOwnedModel(models.Model):
    """Base of every tenant-owned table: rows belong to exactly one organization.

    Reads go through `Model.objects.for_org(org)`; the API base viewset and the dashboard's
    `org_view` do that for you. Unique constraints and indexes lead with `organization`.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")

    objects = OrgQuerySet.as_manager()

    class Meta:
        abstract = True


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"


class Membership(OrgOwnedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=now)

    if TYPE_CHECKING:
        organization_id: int
        user_id: int

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique"),
        ]
        indexes: ClassVar = [models.Index(fields=["user"], name="membership_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.organization_id} ({self.role})"


class Invitation(OrgOwnedModel):
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="invitation_org_created_idx")
        ]

    def __str__(self) -> str:
        return f"Invitation for {self.email}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now()


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiKey(OrgOwnedModel):
    """A credential that acts for one organization. Only a hash of the secret is stored."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=ApiKeyScope.choices, default=ApiKeyScope.READ)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    if TYPE_CHECKING:
        organization_id: int

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="apikey_org_created_idx")
        ]

    def __str__(self) -> str:
        return f"{self.name} (puna_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now()


class IdempotencyRecord(OrgOwnedModel):
    """The stored outcome of a POST made with an `Idempotency-Key`, replayed on retries."""

    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # Null while the first request is still running.
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "key"], name="idempotency_unique"),
        ]
        indexes: ClassVar = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"


class AuditAction(models.TextChoices):
    """Security-relevant things that happen to an organization, as `<object>.<verb>`."""

    ORG_CREATED = "org.created", "Organization created"
    ORG_UPDATED = "org.updated", "Organization settings changed"
    MEMBER_INVITED = "member.invited", "Member invited"
    INVITATION_REVOKED = "invitation.revoked", "Invitation withdrawn"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member role changed"
    OWNERSHIP_GRANTED = "ownership.granted", "Ownership granted"
    OWNERSHIP_REMOVED = "ownership.removed", "Ownership removed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    MEMBER_LEFT = "member.left", "Member left"
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    MODEL_TRAINED = "model.trained", "Model version trained"
    MODEL_ACTIVATED = "model.activated", "Model version activated"
    MODEL_ROLLED_BACK = "model.rolled_back", "Model rolled back"
    MODEL_DEACTIVATED = "model.deactivated", "Model deactivated"
    EXPORT_DOWNLOADED = "export.downloaded", "Export downloaded"
    REPORT_SCHEDULE_CREATED = "report_schedule.created", "Report schedule created"
    REPORT_SCHEDULE_UPDATED = "report_schedule.updated", "Report schedule changed"
    REPORT_SCHEDULE_DELETED = "report_schedule.deleted", "Report schedule deleted"
    WEBHOOK_CREATED = "webhook.created", "Webhook created"
    WEBHOOK_UPDATED = "webhook.updated", "Webhook changed"
    WEBHOOK_DELETED = "webhook.deleted", "Webhook deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated", "Webhook secret rotated"


class AuditEventQuerySet(OrgQuerySet["AuditEvent"]):
    """Append-only: rows are inserted by `tenants.audit.audit_record` and never changed."""

    def update(self, **kwargs: Any) -> int:
        raise TypeError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only.")


class AuditEvent(OrgOwnedModel):
    """One security-relevant action in an org: who did what to which object, from where.

    The actor's label and the target's label are copied in, so the trail still reads when
    the person leaves, the key is revoked or the object is deleted. A database trigger
    (migration 0004) refuses updates other than the actor links being nulled.
    """

    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=now)

    objects = AuditEventQuerySet.as_manager()  # type: ignore[misc]

    if TYPE_CHECKING:
        organization_id: int
        actor_user_id: int | None
        actor_api_key_id: int | None

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="audit_org_created_idx"),
            models.Index(
                fields=["organization", "action", "-created_at"], name="audit_org_action_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only.")
