from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from tenants import selectors, services
from tenants.api.base import OrgScopedViewSet
from tenants.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    AuditFilterSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    OrganizationSerializer,
)
from tenants.models import ApiKey, AuditEvent, Invitation, Membership


class MembershipViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """Members of the current organization."""

    resource = "members"
    queryset = Membership.objects.all()
    ordering = ("created_at", "id")
    serializer_class = MembershipSerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.select_related("user").order_by("created_at", "id")

    @extend_schema(request=MembershipRoleSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        payload = MembershipRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.membership_change_role(
            membership=membership, role=payload.validated_data["role"], actor=self._actor()
        )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.membership_remove(membership=instance, actor=self._actor())

    def _actor(self) -> Membership:
        # API keys never hold members:write; this keeps the type honest if that ever changes.
        if self.membership is None:
            raise PermissionDenied("Only signed-in members can manage members.")
        return self.membership


class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """Pending invitations to the current organization."""

    resource = "members"
    queryset = Invitation.objects.all()
    serializer_class = InvitationSerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True).order_by(
            "-created_at"
        )

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = InvitationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(
            org=self.org,
            invited_by=request.user,  # type: ignore[arg-type]
            accept_url_base=request.build_absolute_uri("/"),
            **payload.validated_data,
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Invitation) -> None:
        services.invitation_revoke(invitation=instance)


class ApiKeyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """API keys of the current organization. DELETE revokes."""

    resource = "keys"
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.select_related("created_by").order_by("-created_at")

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        api_key, raw = services.api_key_create(
            org=self.org,
            created_by=request.user,  # type: ignore[arg-type]
            **payload.validated_data,
        )
        api_key.key = raw  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiKey) -> None:
        services.api_key_revoke(api_key=instance)


class CurrentOrgViewSet(OrgScopedViewSet):
    """The organization this key or session acts for."""

    resource = "feedback"
    queryset = Membership.objects.none()

    @extend_schema(responses=OrganizationSerializer)
    def list(self, request: Request) -> Response:
        return Response(OrganizationSerializer(self.org).data)


@extend_schema_view(list=extend_schema(parameters=[AuditFilterSerializer]))
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The organization's audit trail, newest first: read-only, for owners and admins signed in
    (API keys never read it, as they never manage members, keys or the org)."""

    resource = "audit"
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        query = AuditFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return selectors.audit_event_list(
            org=self.org,
            action=data.get("action", ""),
            actor=data.get("actor", ""),
            since=data.get("since"),
            until=data.get("until"),
        )
