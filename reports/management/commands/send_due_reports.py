from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports import services
from tenants.context import org_context
from tenants.models import Organization


class Command(BaseCommand):
    help = (
        "Run one report dispatch cycle: claim every schedule's latest due period (catching up "
        "after downtime). With --now, build and email them in this process; without, queue "
        "them for the worker. Prints how many reports it sent (or queued)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", action="store_true", help="Build and send here instead of in the worker."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["now"]:
            self.stdout.write(str(services.reports_dispatch()))
            return
        sent = 0
        failures = []
        orgs: dict[int, Organization] = {}
        for report_id, org_id in services.reports_claim_due():
            org = orgs.get(org_id) or Organization.objects.get(pk=org_id)
            orgs[org_id] = org
            try:
                with org_context(org):
                    sent += services.report_process(org=org, report_id=report_id)
            except Exception as exc:
                failures.append(f"report {report_id}: {exc}")
        self.stdout.write(str(sent))
        if failures:
            raise CommandError("; ".join(failures))
