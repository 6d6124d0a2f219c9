from __future__ import annotations

from typing import Any

from rest_framework import serializers

from saas.serializers import StrictInputSerializer
from tenants.audit import API_KEY_LABEL
from tenants.models import (
    ApiKey,
    ApiKeyScope,
    AuditAction,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    Role,
)


class OrganizationSerializer(serializers.ModelSerializer[Organization]):
    class Meta:
        model = Organization
        fields = ("id", "name", "slug", "plan", "timezone", "created_at")
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ("id", "email", "full_name", "role", "created_at")
        read_only_fields = ("id", "email", "full_name", "created_at")


class MembershipRoleSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    invited_by = serializers.EmailField(
        source="invited_by.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Invitation
        fields = ("id", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at")
        read_only_fields = ("id", "invited_by", "created_at", "expires_at", "accepted_at")


class InvitationCreateSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    # None for keys made outside a session (e.g. by `make run`'s demo setup).
    created_by = serializers.EmailField(
        source="created_by.email", read_only=True, default=None, allow_null=True
    )
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "scope",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "is_active",
        )
        read_only_fields: tuple[str, ...] = fields


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=ApiKeyScope.choices, default=ApiKeyScope.READ)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    """Returned once, on creation: the only time the full key is visible."""

    key = serializers.CharField(read_only=True)

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor = serializers.CharField(source="actor_label", read_only=True)
    actor_type = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "created_at",
            "action",
            "actor",
            "actor_type",
            "target_type",
            "target_id",
            "target_label",
            "metadata",
            "ip_address",
            "request_id",
        )
        read_only_fields = fields

    def get_actor_type(self, event: AuditEvent) -> str:
        if event.actor_api_key_id is not None or event.actor_label.startswith(API_KEY_LABEL):
            return "api_key"
        if event.actor_user_id is not None or event.actor_label != "system":
            return "user"
        return "system"


class AuditFilterSerializer(StrictInputSerializer):
    action = serializers.ChoiceField(choices=AuditAction.choices, required=False)
    actor = serializers.CharField(required=False, max_length=254)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)
