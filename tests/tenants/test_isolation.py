"""Charlie (the other org) must see nothing of Alpha's, and get 404 rather than 403."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from saas import urls as root_urls
from tenants import services
from tenants.api.base import OrgScopedViewSet
from tenants.models import Membership, Organization, Role
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha_objects(owner: Membership, member: Membership) -> dict[str, int]:
    key, _ = make_api_key(owner.organization, name="alpha key")
    invitation, _ = services.invitation_create(
        org=owner.organization,
        email="new@alpha.example",
        role="viewer",
        invited_by=owner.user,
        accept_url_base="http://testserver/",
    )
    return {"member": member.pk, "invitation": invitation.pk, "apikey": key.pk}


@pytest.fixture
def charlie_api(other_owner: Membership) -> APIClient:
    client = APIClient()
    client.force_login(other_owner.user)
    client.credentials(HTTP_X_PUNA_ORG=other_owner.organization.slug)
    return client


API_RESOURCES = [
    ("members", "member", {"role": "viewer"}),
    ("invitations", "invitation", None),
    ("api-keys", "apikey", None),
]


@pytest.mark.parametrize(("path", "name", "patch"), API_RESOURCES)
def test_api_lists_exclude_and_details_404_for_other_org(
    path: str,
    name: str,
    patch: Any,
    alpha_objects: dict[str, int],
    charlie_api: APIClient,
    api_client: APIClient,
) -> None:
    pk = alpha_objects[name]
    assert pk in [row["id"] for row in api_client.get(f"/api/v1/{path}").json()["results"]]
    listed = charlie_api.get(f"/api/v1/{path}").json()["results"]
    assert pk not in [row["id"] for row in listed]
    assert charlie_api.get(f"/api/v1/{path}/{pk}").status_code == 404
    assert charlie_api.delete(f"/api/v1/{path}/{pk}").status_code == 404
    if patch:
        assert charlie_api.patch(f"/api/v1/{path}/{pk}", patch, format="json").status_code == 404
    assert api_client.get(f"/api/v1/{path}/{pk}").status_code == 200


def test_choosing_another_orgs_slug_in_the_api_is_404(
    org: Organization, charlie_api: APIClient, alpha_objects: dict[str, int]
) -> None:
    charlie_api.credentials(HTTP_X_PUNA_ORG=org.slug)
    assert charlie_api.get("/api/v1/members").status_code == 404
    assert charlie_api.get(f"/api/v1/members/{alpha_objects['member']}").status_code == 404


def test_api_key_of_other_org_sees_only_its_own_org(
    org: Organization, other_org: Organization
) -> None:
    _, raw = make_api_key(other_org)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_PUNA_ORG=org.slug)
    assert client.get("/api/v1/org").json()["slug"] == "bravo"


def test_dashboard_pages_of_other_org_are_404(
    org: Organization, other_owner: Membership, alpha_objects: dict[str, int]
) -> None:
    charlie = Client()
    charlie.force_login(other_owner.user)
    slug = org.slug
    for url in [
        f"/o/{slug}/",
        f"/o/{slug}/members/",
        f"/o/{slug}/api-keys/",
        f"/o/{slug}/settings/",
    ]:
        assert charlie.get(url).status_code == 404, url
    posts = [
        (f"/o/{slug}/members/{alpha_objects['member']}/role/", {"role": "owner"}),
        (f"/o/{slug}/members/{alpha_objects['member']}/remove/", {}),
        (f"/o/{slug}/invitations/{alpha_objects['invitation']}/revoke/", {}),
        (f"/o/{slug}/api-keys/{alpha_objects['apikey']}/revoke/", {}),
        (f"/o/{slug}/leave/", {}),
    ]
    for url, data in posts:
        assert charlie.post(url, data).status_code == 404, url
    # Alpha's ids used inside Charlie's own org are "not found" too.
    own = other_owner.organization.slug
    for url, data in posts[:4]:
        assert charlie.post(url.replace(f"/o/{slug}/", f"/o/{own}/"), data).status_code == 404, url
    assert Membership.objects.filter(pk=alpha_objects["member"], role=Role.ANALYST).exists()


def test_dashboard_page_for_unknown_slug_is_404(web_client: Client) -> None:
    assert web_client.get("/o/no-such-org/").status_code == 404
    assert web_client.get("/o/INVALID SLUG/").status_code == 404


def _walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append((prefix + str(pattern.pattern), pattern.callback))
    return found


# Views under /api/v1/ that serve no tenant data.
API_ALLOWLIST = {"api_root", "SpectacularAPIView", "SpectacularSwaggerView", "SpectacularRedocView"}


def test_every_api_view_is_an_org_scoped_viewset() -> None:
    routes = [
        (route, cb)
        for route, cb in _walk(get_resolver().url_patterns)
        if route.startswith("api/v1/")
    ]
    assert len(routes) > 5
    for route, callback in routes:
        cls = getattr(callback, "cls", None)
        name = cls.__name__ if cls else callback.__name__
        if name in API_ALLOWLIST:
            continue
        assert cls is not None, f"{route} ({name}) is not a viewset"
        assert issubclass(cls, OrgScopedViewSet), f"{route} ({name}) is not scoped"


def test_every_org_dashboard_view_goes_through_org_view() -> None:
    routes = [
        (r, cb) for r, cb in _walk(root_urls.urlpatterns) if r.startswith("o/<slug:org_slug>/")
    ]
    assert len(routes) > 5
    for route, callback in routes:
        assert getattr(callback, "puna_org_scoped", False), f"{route} bypasses org_view"


def test_scoped_viewset_refuses_subclasses_that_override_the_queryset() -> None:
    with pytest.raises(TypeError, match="overrides get_queryset"):

        class Sneaky(OrgScopedViewSet):
            resource = "feedback"

            def get_queryset(self):
                return Membership.objects.all()
