"""A private PostgreSQL with Puna migrated into it, an org, its owner and a write API key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.reliability.servers import PrivatePostgres, base_env, manage

OWNER_EMAIL = "owner@faults.example"
OWNER_PASSWORD = "faults-owner-2026"  # a throwaway server's test account


@dataclass(frozen=True)
class Stack:
    pg: PrivatePostgres
    org_slug: str
    api_key: str

    def env(self, **overrides: str) -> dict[str, str]:
        return base_env(DATABASE_URL=self.pg.url(), **overrides)


@pytest.fixture(scope="session")
def private_stack() -> Iterator[Stack]:
    pg = PrivatePostgres()
    try:
        pg.init()
        env = base_env(DATABASE_URL=pg.url())
        manage("migrate", "--noinput", "-v", "0", env=env)
        slug = manage(
            "create_org", "--name", "Faults School", "--owner-email", OWNER_EMAIL,
            "--password", OWNER_PASSWORD, env=env,
        ).strip()  # fmt: skip
        key = manage("create_api_key", "--org", slug, "--name", "faults", env=env).strip()
        yield Stack(pg=pg, org_slug=slug, api_key=key)
    finally:
        pg.destroy()
