"""Plain, typed builders for test data."""

from __future__ import annotations

import itertools
from typing import Any

from tenants import services
from tenants.models import ApiKey, Membership, Organization, Role, User

PASSWORD = "correct-horse-battery-staple"
_seq = itertools.count(1)


def make_user(email: str | None = None, **fields: Any) -> User:
    n = next(_seq)
    return User.objects.create_user(email or f"person{n}@example.com", PASSWORD, **fields)


def make_org(name: str | None = None, slug: str | None = None, **fields: Any) -> Organization:
    n = next(_seq)
    return Organization.objects.create(
        name=name or f"School {n}", slug=slug or f"school-{n}", **fields
    )


def make_membership(
    org: Organization, role: str = Role.VIEWER, user: User | None = None, **user_fields: Any
) -> Membership:
    return Membership.objects.create(
        organization=org, user=user or make_user(**user_fields), role=role
    )


def make_api_key(
    org: Organization, scope: str = "write", name: str = "test key"
) -> tuple[ApiKey, str]:
    return services.api_key_create(org=org, name=name, scope=scope, created_by=None)
