"""System checks: warn when row-level security cannot bind the app's database role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.checks import Tags, Warning, register
from django.db import connections


@register(Tags.database, deploy=True)
def rls_enforced(*, databases: Sequence[str] | None = None, **kwargs: Any) -> list[Warning]:
    """Runs with `check --deploy --database default` (release.sh): says if RLS is bypassed."""
    from tenants.rls import enforcement_problems

    if not databases or "default" not in databases:
        return []
    return [
        Warning(
            f"Row-level security is not enforced: {problem}.",
            hint="Set DATABASE_APP_USER and DATABASE_APP_PASSWORD so the app connects as a "
            "role that neither owns the tables nor bypasses RLS (README: row-level security).",
            id="tenants.W001",
        )
        for problem in enforcement_problems(connections["default"])
    ]
