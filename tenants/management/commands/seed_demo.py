from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from tenants import services
from tenants.models import ApiKey, Membership, Organization, Role, User

DEMO_EMAIL = "demo@puna.local"
DEMO_PASSWORD = "puna-demo-2026"  # noqa: S105 - a published demo login, local only
DEMO_ORG_SLUG = "demo-school"
DEMO_KEY_NAME = "Demo key"


class Command(BaseCommand):
    help = (
        "Create (idempotently) a demo org, owner and API key. Prints the login and a fresh demo "
        "key; with --key-only prints just the key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key-only", action="store_true")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_user(DEMO_EMAIL, DEMO_PASSWORD, full_name="Demo Coordinator")
        org = Organization.objects.filter(slug=DEMO_ORG_SLUG).first()
        if org is None:
            org = Organization.objects.create(name="Demo School", slug=DEMO_ORG_SLUG)
        Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Role.OWNER})
        # Keys are shown once, so each run replaces the demo key with a fresh one.
        for old in ApiKey.objects.for_org(org).filter(name=DEMO_KEY_NAME, revoked_at__isnull=True):
            services.api_key_revoke(api_key=old)
        _, raw = services.api_key_create(
            org=org, name=DEMO_KEY_NAME, scope="write", created_by=user
        )
        if options["key_only"]:
            self.stdout.write(raw)
            return
        self.stdout.write(f"login: {DEMO_EMAIL}\npassword: {DEMO_PASSWORD}\napi key: {raw}")
