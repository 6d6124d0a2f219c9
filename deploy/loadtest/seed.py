"""`python -m loadtest.seed N` (deploy/ on PYTHONPATH): the load test's orgs.

Creates N orgs on the business plan (3,000 requests a minute per key, 2,000,000 items a month,
so plan limits do not decide the result), each with an owner who signs in to the dashboard and
two write API keys, using `create_org` and `create_api_key` as an operator would. Prints them as
JSON. Runs in its own process against the load test's database, with the production settings;
the members' password comes on stdin (a throwaway, but not for `ps` to show).
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any


def _command(command: str, **options: Any) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command(command, stdout=out, **options)
    return out.getvalue().strip()


def seed(*, orgs: int, password: str) -> list[dict[str, Any]]:
    seeded = []
    for n in range(1, orgs + 1):
        email = f"load{n}@loadtest.puna.local"
        slug = _command(
            "create_org",
            name=f"Load School {n}",
            owner_email=email,
            password=password,
            plan="business",
        )
        keys = [
            _command("create_api_key", org=slug, name=f"load key {k}", scopes="write")
            for k in (1, 2)
        ]
        seeded.append({"slug": slug, "email": email, "password": password, "keys": keys})
    return seeded


def main() -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas.settings")
    django.setup()
    print(json.dumps(seed(orgs=int(sys.argv[1]), password=sys.stdin.readline().strip())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
