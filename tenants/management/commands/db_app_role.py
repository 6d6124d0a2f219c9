from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from tenants import rls


class Command(BaseCommand):
    help = (
        "As the tables' owner (DB_AS_OWNER=1), create or update the app's database role "
        "(DATABASE_APP_USER / DATABASE_APP_PASSWORD) and grant it data access only, so that "
        "row-level security binds it. Idempotent; release.sh runs it after migrate."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        role = settings.DATABASE_APP_USER
        if not role:
            self.stdout.write(
                "DATABASE_APP_USER is not set: the app connects as the owner and row-level "
                "security is not enforced (README: row-level security)."
            )
            return
        try:
            rls.grant_app_role(connection, role=role, password=settings.DATABASE_APP_PASSWORD)
        except ValueError as exc:
            raise CommandError(f"{exc} Run this with DB_AS_OWNER=1.") from exc
        self.stdout.write(f"Database role {role!r} can read and write rows, under RLS.")
