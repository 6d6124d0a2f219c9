"""The dashboard's one way to reach an organization: `/o/<org_slug>/...` behind `org_view`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseBase

from tenants.api.base import SESSION_ORG_KEY
from tenants.audit import audit_actor_set
from tenants.context import activate_org
from tenants.models import Membership, Organization, OrgOwnedModel, User
from tenants.roles import required_scope, role_allows
from tenants.selectors import membership_get


class OrgRequest(HttpRequest):
    """An HttpRequest that went through `org_view`."""

    user: User
    org: Organization
    membership: Membership


OrgView = Callable[Concatenate[OrgRequest, ...], HttpResponseBase]


def org_view(
    resource: str, *, scope: str | None = None
) -> Callable[[OrgView], Callable[..., HttpResponseBase]]:
    """Resolve the org from the URL for a signed-in member, else 404; check the role's scope.

    GET needs `<resource>:read`, other methods `<resource>:write` (403 inside one's own org);
    `scope` names the one scope every method needs instead, for the rare page that differs.
    """

    def decorator(view: OrgView) -> Callable[..., HttpResponseBase]:
        @login_required
        @wraps(view)
        def wrapped(
            request: HttpRequest, org_slug: str, *args: Any, **kwargs: Any
        ) -> HttpResponseBase:
            membership = membership_get(user=request.user, org_slug=org_slug)
            if membership is None:
                raise Http404("No such organization.")
            needed = scope or required_scope(resource, request.method or "GET")
            if not role_allows(membership.role, needed):
                raise PermissionDenied("Your role does not allow this.")
            org_request = cast("OrgRequest", request)
            org_request.org = membership.organization
            org_request.membership = membership
            activate_org(membership.organization)
            audit_actor_set(user=request.user, api_key=None)
            request.session[SESSION_ORG_KEY] = org_slug
            return view(org_request, *args, **kwargs)

        wrapped.puna_org_scoped = True  # type: ignore[attr-defined]
        wrapped.puna_resource = resource  # type: ignore[attr-defined]
        return wrapped

    return decorator


def org_object_or_404[M: OrgOwnedModel](model: type[M], *, org: Organization, pk: int) -> M:
    """The org's object with this id; another org's object is "not found", like a missing one."""
    # The stubs type a generic model's default manager by its base class; it returns M.
    obj = cast("M | None", model._default_manager.filter(organization=org, pk=pk).first())
    if obj is None:
        raise Http404(f"No such {model._meta.verbose_name}.")
    return obj
