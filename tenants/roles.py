"""What each role and each API key scope may do: a map from principal to scopes.

A scope is `<resource>:<read|write>`. Views declare their resource; the HTTP method picks
read (safe methods) or write. Keeping the whole policy in one table makes it reviewable.
"""

from __future__ import annotations

from tenants.models import ApiKeyScope, Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Resources an organization's data is made of; API keys reach only these.
DATA_RESOURCES = ("feedback", "imports", "categories", "models", "reports", "monitoring")
# Resources about the organization itself; only people (sessions) reach these.
ADMIN_RESOURCES = ("org", "members", "keys")
# The audit trail: who did what, from which address. Only those who manage the org read it,
# and nobody writes it through a view (services append to it).
AUDIT_READ = "audit:read"


def _scopes(resources: tuple[str, ...], *actions: str) -> frozenset[str]:
    return frozenset(f"{resource}:{action}" for resource in resources for action in actions)


_ALL_READ = _scopes(DATA_RESOURCES + ADMIN_RESOURCES, "read")

ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.OWNER: _ALL_READ | _scopes(DATA_RESOURCES + ADMIN_RESOURCES, "write") | {AUDIT_READ},
    Role.ADMIN: _ALL_READ | _scopes(DATA_RESOURCES + ADMIN_RESOURCES, "write") | {AUDIT_READ},
    Role.ANALYST: _ALL_READ | _scopes(DATA_RESOURCES, "write"),
    Role.VIEWER: _ALL_READ,
}

API_KEY_SCOPES: dict[str, frozenset[str]] = {
    ApiKeyScope.READ: _scopes(DATA_RESOURCES, "read"),
    ApiKeyScope.WRITE: _scopes(DATA_RESOURCES, "read", "write"),
}

# Only owners may grant or take away ownership, or change the plan.
OWNER_ONLY_ACTIONS = frozenset({"grant_owner", "change_plan", "delete_org"})


def required_scope(resource: str, method: str) -> str:
    return f"{resource}:{'read' if method.upper() in SAFE_METHODS else 'write'}"


def role_allows(role: str, scope: str) -> bool:
    return scope in ROLE_SCOPES.get(role, frozenset())


def api_key_allows(key_scope: str, scope: str) -> bool:
    return scope in API_KEY_SCOPES.get(key_scope, frozenset())
