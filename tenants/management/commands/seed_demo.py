from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from tenants import services
from tenants.context import org_context
from tenants.models import ApiKey, Membership, Organization, Role, User

DEMO_EMAIL = "demo@puna.local"
DEMO_PASSWORD = "puna-demo-2026"  # noqa: S105  # nosec B105 # a published demo login, local only
DEMO_ORG_SLUG = "demo-school"
DEMO_KEY_NAME = "Demo key"


def _load_demo_feedback(org: Organization) -> None:
    """Ingest the sample comments once (external ids make it idempotent), spread over a month
    so the charts have a shape."""
    from feedback.models import Feedback
    from feedback.services import FeedbackInput, feedback_ingest
    from tenants.management.commands.demo_feedback import DEMO_FEEDBACK

    items = [
        FeedbackInput(text=text, source=source, external_id=f"demo-{n}")
        for n, (source, text) in enumerate(DEMO_FEEDBACK)
    ]
    result = feedback_ingest(org=org, items=items)
    now = timezone.now()
    for index, record in result.created.items():
        # Demo data only: pretend it arrived over the last 30 days.
        when = now - timedelta(days=(index * 7) % 30, hours=index % 9)
        Feedback.objects.for_org(org).filter(pk=record.pk).update(
            received_at=when, submitted_at=when
        )


class Command(BaseCommand):
    help = (
        "Create (idempotently) a demo org, owner, API key and sample feedback. Prints the login "
        "and a fresh demo key; with --key-only prints just the key."
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
        with org_context(org):
            Membership.objects.get_or_create(
                organization=org, user=user, defaults={"role": Role.OWNER}
            )
            # Keys are shown once, so each run replaces the demo key with a fresh one.
            for old in ApiKey.objects.for_org(org).filter(
                name=DEMO_KEY_NAME, revoked_at__isnull=True
            ):
                services.api_key_revoke(api_key=old)
            _, raw = services.api_key_create(
                org=org, name=DEMO_KEY_NAME, scope="write", created_by=user
            )
            _load_demo_feedback(org)
        if options["key_only"]:
            self.stdout.write(raw)
            return
        self.stdout.write(f"login: {DEMO_EMAIL}\npassword: {DEMO_PASSWORD}\napi key: {raw}")
