from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from tenants import services
from tenants.models import Plan, User, normalize_email


class Command(BaseCommand):
    help = "Create an organization with an owner (created if missing). Prints the org's slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--password", help="Password for a new owner account.")
        parser.add_argument("--plan", default=Plan.FREE, choices=Plan.values)

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        email = normalize_email(options["owner_email"])
        owner = User.objects.filter(email=email).first()
        if owner is None:
            owner = User.objects.create_user(email, options["password"])
        try:
            org = services.org_create(name=options["name"], owner=owner, plan=options["plan"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(org.slug)
