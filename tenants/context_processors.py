from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tenants.roles import ROLE_SCOPES
from tenants.selectors import membership_list_for_user


def orgs(request: HttpRequest) -> dict[str, Any]:
    """The org switcher's list and the current member's scopes, for the layout."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "my_memberships": list(membership_list_for_user(user=request.user)),
        "current_org": getattr(request, "org", None),
        "scopes": ROLE_SCOPES.get(membership.role, frozenset()) if membership else frozenset(),
    }
