from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import services
from tenants.context import org_context
from tenants.models import ApiKeyScope, Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. Prints the key (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="The organization's slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default=ApiKeyScope.WRITE, choices=ApiKeyScope.values)

    def handle(self, *args: Any, **options: Any) -> None:
        org = Organization.objects.filter(slug=options["org"]).first()
        if org is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        try:
            with org_context(org):
                _, raw = services.api_key_create(
                    org=org, name=options["name"], scope=options["scopes"], created_by=None
                )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(raw)
