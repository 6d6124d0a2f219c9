"""The one way an API view reaches tenant data.

`OrgScopedViewSet` resolves the org once (from the API key, or from the signed-in member's
current org), checks the role's or key's scopes for the HTTP method, applies the plan's rate
limit, makes POSTs idempotent with `Idempotency-Key`, and owns the queryset and object creation
so that nothing a subclass writes can escape the org. Subclasses that override those methods
fail at import time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework import exceptions, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from saas.throttling import PlanRateThrottle, rate_limit_headers
from tenants import idempotency
from tenants.audit import audit_actor_set
from tenants.context import activate_org
from tenants.models import ApiKey, IdempotencyRecord, Membership, Organization, OrgOwnedModel
from tenants.roles import api_key_allows, required_scope, role_allows
from tenants.selectors import membership_get

SESSION_ORG_KEY = "puna_org_slug"
ORG_HEADER = "HTTP_X_PUNA_ORG"

_SEALED = (
    "get_queryset",
    "perform_create",
    "initial",
    "check_permissions",
    "check_scope",
    "finalize_response",
    "handle_exception",
)


def resolve_request_org(request: Request) -> tuple[Organization, Membership | None, ApiKey | None]:
    """Which org this API request acts for; not a member → NotFound (never a 403)."""
    auth = request.auth
    if isinstance(auth, ApiKey):
        return auth.organization, None, auth
    slug = request.META.get(ORG_HEADER) or request.session.get(SESSION_ORG_KEY)
    if not slug:
        raise exceptions.NotFound("No organization selected.")
    membership = membership_get(user=request.user, org_slug=str(slug))
    if membership is None:
        raise exceptions.NotFound("No organization selected.")
    return membership.organization, membership, None


class OrgScopedViewSet(viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Base of every API viewset. Subclasses set `resource` and `queryset`, and may narrow the
    queryset with `scope_queryset` and create objects with `create_for_org`."""

    resource: ClassVar[str]
    # Actions whose scope differs from what their HTTP method implies.
    action_scopes: ClassVar[dict[str, str]] = {}
    throttle_classes = [PlanRateThrottle]
    org: Organization
    membership: Membership | None
    api_key: ApiKey | None
    _idempotency_record: IdempotencyRecord | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); tenant scoping lives in "
                    f"OrgScopedViewSet. Use scope_queryset()/create_for_org() instead."
                )

    # DRF runs authentication, then check_permissions, then throttles: the org is resolved in
    # check_permissions so the throttle can count against the org's plan.
    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)
        self.org, self.membership, self.api_key = resolve_request_org(request)
        activate_org(self.org)
        audit_actor_set(user=request.user, api_key=self.api_key)
        self.check_scope(request)

    def check_scope(self, request: Request) -> None:
        scope = self.action_scopes.get(self.action or "") or required_scope(
            self.resource, request.method or "GET"
        )
        allowed = (
            api_key_allows(self.api_key.scope, scope)
            if self.api_key is not None
            else self.membership is not None and role_allows(self.membership.role, scope)
        )
        if not allowed:
            raise exceptions.PermissionDenied(f"This requires the {scope} permission.")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        key = request.META.get(idempotency.HEADER)
        if request.method == "POST" and key is not None:
            body = request._request.body if _is_json(request) else b""
            self._idempotency_record = idempotency.idempotency_begin(
                org=self.org,
                key=key,
                fingerprint=idempotency.request_fingerprint(
                    method="POST", path=request.path, body=body
                ),
            )

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, idempotency.Replay):
            response = Response(exc.record.response_body, status=exc.record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            return super().handle_exception(exc)
        except Exception:
            # Unhandled, so it becomes a 500: free the key so the client can retry for real.
            if self._idempotency_record is not None:
                self._idempotency_record.delete()
                self._idempotency_record = None
            raise

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        record = self._idempotency_record
        if record is not None:
            self._idempotency_record = None
            idempotency.idempotency_finish(
                record=record,
                status_code=response.status_code,
                body=getattr(response, "data", None),
            )
        for header, value in rate_limit_headers(request).items():
            response[header] = value
        return super().finalize_response(request, response, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        declared = getattr(self, "queryset", None)
        if declared is None:
            raise TypeError(f"{type(self).__name__} must declare a queryset.")
        model: type[Model] = declared.model
        if not issubclass(model, OrgOwnedModel):
            raise TypeError(f"{model.__name__} is not org-owned; it cannot be served here.")
        qs = model._default_manager.filter(organization=self.org)
        return self.scope_queryset(qs)

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Narrow or annotate the org's queryset (already filtered by org)."""
        return queryset

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = self.create_for_org(serializer, org=self.org)

    def create_for_org(self, serializer: BaseSerializer[Any], *, org: Organization) -> Any:
        """Create the object for `org` (call a service with `serializer.validated_data`)."""
        raise exceptions.MethodNotAllowed(self.request.method or "POST")


def _is_json(request: Request) -> bool:
    return (request.content_type or "").startswith("application/json")
