"""Writes for reports, alerts and webhooks.

## Exactly one report per (schedule, period)

1. **Claim.** `reports_claim_due` computes each enabled schedule's *latest due period* (not
   "is it due this minute"), so a worker that was down at 08:00 still produces Monday's
   report when it comes back at 09:17. It inserts the Report row with
   `INSERT ... ON CONFLICT DO NOTHING` against the unique (org, schedule, period_start)
   constraint: however many dispatchers race, one row exists per period.
2. **Generate.** `report_process` locks the row with `SELECT ... FOR UPDATE SKIP LOCKED`
   and builds the snapshot and files only from CLAIMED; another worker that finds the row
   locked walks away instead of waiting to do the same work.
3. **Send.** In one transaction it locks the READY row (SKIP LOCKED again), sends the email
   and writes `status=SENT, sent_at`; the commit is what makes the send count.

A crash between the SMTP server accepting the email and our COMMIT leaves the row READY and
the next dispatch sends it again. We chose **at-least-once for the email**: a coordinator
who misses Monday's summary silently is worse off than one who, rarely, gets it twice; the
window is the few milliseconds between the server's "250 OK" and the commit; and every copy
carries the same Message-ID (`<report-<id>@puna>`), which mail systems and people recognise
as one message. At-most-once (mark SENT, commit, then send) would turn every crash or SMTP
timeout in that window into a report nobody ever receives, with no trace to retry from.
Alert emails and webhook deliveries follow the same rule (receivers deduplicate webhooks on
`Puna-Event-Id`).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.html import escape
from procrastinate.exceptions import AlreadyEnqueued

from reports import delivery, render, schedule, selectors
from reports.detectors import (
    BASELINE_DAYS,
    Finding,
    flagged_bursts,
    negative_share_spike,
    volume_spike,
)
from reports.models import (
    AlertEvent,
    AlertKind,
    Report,
    ReportSchedule,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from tenants.audit import audit_record
from tenants.context import dangerously_all_orgs, org_context
from tenants.models import AuditAction, Membership, Organization, User

logger = logging.getLogger(__name__)

REPORT_MAX_SEND_ATTEMPTS = 5
WEBHOOK_MAX_ATTEMPTS = 5
MAX_RECIPIENTS = 50
# `feedback.flagged` events are looked for this far back (covers a worker's downtime).
FLAGGED_LOOKBACK = dt.timedelta(hours=24)
FLAGGED_BATCH = 500

SCHEDULE_FIELDS = frozenset(
    {
        "name",
        "frequency",
        "hour",
        "weekday",
        "day_of_month",
        "recipient_member_ids",
        "recipient_emails",
        "source",
        "category",
        "enabled",
    }
)


# --- schedules -----------------------------------------------------------------------------------


def _clean_timing(values: dict[str, Any], errors: dict[str, str]) -> None:
    values["name"] = str(values.get("name") or "").strip()
    if not values["name"] or len(values["name"]) > 100:
        errors["name"] = "Give the schedule a name of at most 100 characters."
    frequency = values.get("frequency")
    if frequency not in schedule.Frequency.ALL:
        errors["frequency"] = f"Choose one of {', '.join(schedule.Frequency.ALL)}."
    if frequency != schedule.Frequency.WEEKLY:
        values["weekday"] = None
    elif values.get("weekday") is None or not 0 <= values["weekday"] <= 6:
        errors["weekday"] = "A weekly schedule needs a weekday, 0 (Monday) to 6 (Sunday)."
    if frequency != schedule.Frequency.MONTHLY:
        values["day_of_month"] = None
    elif values.get("day_of_month") is None or not 1 <= values["day_of_month"] <= 31:
        errors["day_of_month"] = "A monthly schedule needs a day 1 to 31 (31 = month's last day)."
    if not isinstance(values.get("hour"), int) or not 0 <= values["hour"] <= 23:
        errors["hour"] = "The hour is 0 to 23, in the organization's time zone."


def _clean_recipients(
    org: Organization, values: dict[str, Any], errors: dict[str, str]
) -> list[Membership]:
    emails = [str(e).strip().lower() for e in values.get("recipient_emails") or []]
    try:
        for email in emails:
            EmailValidator()(email)
    except ValidationError:
        errors["recipient_emails"] = "Give valid email addresses."
    values["recipient_emails"] = list(dict.fromkeys(emails))
    ids = set(values.get("recipient_member_ids") or [])
    # Looked up within the org: another org's membership id is simply "not found".
    members = list(Membership.objects.for_org(org).filter(pk__in=ids))
    if len(members) != len(ids):
        errors["recipient_member_ids"] = "Unknown member; choose members of this organization."
    if not members and not values["recipient_emails"]:
        errors["recipient_emails"] = "Add at least one member or email address."
    if len(members) + len(values["recipient_emails"]) > MAX_RECIPIENTS:
        errors["recipient_emails"] = f"At most {MAX_RECIPIENTS} recipients."
    return members


def _clean_schedule(org: Organization, values: dict[str, Any]) -> list[Membership]:
    """Validate schedule fields in place; returns the recipient members (found in `org`)."""
    errors: dict[str, str] = {}
    _clean_timing(values, errors)
    members = _clean_recipients(org, values, errors)
    values["source"] = str(values.get("source") or "").strip()[:50]
    values["category"] = str(values.get("category") or "").strip()[:60]
    if errors:
        raise ValidationError(errors)
    return members


@transaction.atomic
def schedule_create(
    *,
    org: Organization,
    name: str,
    frequency: str,
    hour: int,
    weekday: int | None = None,
    day_of_month: int | None = None,
    recipient_member_ids: Iterable[int] = (),
    recipient_emails: Iterable[str] = (),
    source: str = "",
    category: str = "",
    enabled: bool = True,
    created_by: User | None = None,
) -> ReportSchedule:
    """Create a report schedule; recipients must be members of `org` or email addresses."""
    values: dict[str, Any] = {
        "name": name,
        "frequency": frequency,
        "hour": hour,
        "weekday": weekday,
        "day_of_month": day_of_month,
        "recipient_member_ids": list(recipient_member_ids),
        "recipient_emails": list(recipient_emails),
        "source": source,
        "category": category,
    }
    members = _clean_schedule(org, values)
    values.pop("recipient_member_ids")
    created = ReportSchedule.objects.create(
        organization=org, enabled=enabled, created_by=created_by, **values
    )
    created.recipient_members.set(members)
    audit_record(
        org=org,
        action=AuditAction.REPORT_SCHEDULE_CREATED,
        target=created,
        target_label=created.name,
        metadata={"frequency": created.frequency, "recipients": _recipient_count(created, members)},
        user=created_by,
    )
    return created


def _recipient_count(s: ReportSchedule, members: list[Membership]) -> int:
    return len(members) + len(s.recipient_emails)


@transaction.atomic
def schedule_update(*, schedule: ReportSchedule, changes: dict[str, Any]) -> ReportSchedule:
    """Change some of a schedule's fields (`SCHEDULE_FIELDS`), validated as a whole."""
    unknown = set(changes) - SCHEDULE_FIELDS
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Unknown field."))
    org = schedule.organization
    values: dict[str, Any] = {
        "name": schedule.name,
        "frequency": schedule.frequency,
        "hour": schedule.hour,
        "weekday": schedule.weekday,
        "day_of_month": schedule.day_of_month,
        "recipient_member_ids": list(schedule.recipient_members.values_list("pk", flat=True)),
        "recipient_emails": schedule.recipient_emails,
        "source": schedule.source,
        "category": schedule.category,
        **changes,
    }
    enabled = bool(values.pop("enabled", schedule.enabled))
    members = _clean_schedule(org, values)
    values.pop("recipient_member_ids")
    for field, value in values.items():
        setattr(schedule, field, value)
    schedule.enabled = enabled
    schedule.updated_at = timezone.now()
    schedule.save(update_fields=[*values, "enabled", "updated_at"])
    schedule.recipient_members.set(members)
    audit_record(
        org=org,
        action=AuditAction.REPORT_SCHEDULE_UPDATED,
        target=schedule,
        target_label=schedule.name,
        metadata={"fields": sorted(changes)},
    )
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: ReportSchedule) -> None:
    """Delete a schedule; its past reports stay in the history (detached)."""
    audit_record(
        org=schedule.organization,
        action=AuditAction.REPORT_SCHEDULE_DELETED,
        target=schedule,
        target_label=schedule.name,
    )
    schedule.delete()


# --- reports -------------------------------------------------------------------------------------


def reports_claim_due(*, now: dt.datetime | None = None) -> list[tuple[int, int]]:
    """Claim the latest due period of every enabled schedule (idempotent), and return
    (report_id, org_id) of every report still to be built or sent.

    Not one transaction on purpose: each claim is a single INSERT ... ON CONFLICT DO NOTHING
    that commits on its own, so one broken schedule cannot hold back the others.
    """
    with dangerously_all_orgs("the scheduler claims every org's due reports"):
        return _reports_claim_due(now or timezone.now())


def _reports_claim_due(now: dt.datetime) -> list[tuple[int, int]]:
    claims = []
    for s in ReportSchedule.objects.filter(enabled=True).select_related("organization"):
        try:
            tz = ZoneInfo(s.organization.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("org %s has an unknown time zone", s.organization_id)
            continue
        period = schedule.latest_due(s.rule(), tz, now)
        # A new schedule starts with its next due time, not with a backlog.
        if period is None or period.due_at < s.created_at:
            continue
        claims.append(
            Report(
                organization_id=s.organization_id,
                schedule=s,
                schedule_name=s.name,
                kind=Report.Kind.SCHEDULED,
                period_start=period.start,
                period_end=period.end,
                timezone=s.organization.timezone,
                created_at=now,
            )
        )
    # ON CONFLICT DO NOTHING: the unique (org, schedule, period_start) decides who claimed it.
    Report.objects.bulk_create(claims, ignore_conflicts=True)
    return list(
        Report.objects.filter(
            status__in=[Report.Status.CLAIMED, Report.Status.READY],
            send_attempts__lt=REPORT_MAX_SEND_ATTEMPTS,
        )
        .order_by("id")
        .values_list("id", "organization_id")
    )


def report_queue(*, report_id: int, org_id: int) -> None:
    """Queue the job that builds and sends a report, unless one is already waiting."""
    from reports.tasks import process_report

    try:
        # A savepoint: a refused duplicate must not abort the caller's transaction.
        with transaction.atomic():
            process_report.configure(
                queueing_lock=f"report-{report_id}", lock=f"report-{report_id}"
            ).defer(report_id=report_id, org_id=org_id)
    except AlreadyEnqueued:
        pass


def reports_dispatch(*, now: dt.datetime | None = None) -> int:
    """One dispatch cycle for the worker: claim due periods and queue the unfinished ones."""
    pending = reports_claim_due(now=now)
    for report_id, org_id in pending:
        report_queue(report_id=report_id, org_id=org_id)
    return len(pending)


def report_process(*, org: Organization, report_id: int) -> bool:
    """Build (if needed) and email one report. True if this call sent it; False if it was
    already sent, failed for good, or another worker holds it right now."""
    _report_generate(org=org, report_id=report_id)
    return _report_send(org=org, report_id=report_id)


def _report_files(org: Organization, report: Report) -> None:
    source = report.schedule.source if report.schedule else ""
    category = report.schedule.category if report.schedule else ""
    stats = selectors.report_snapshot(
        org=org,
        since=report.period_start,
        until=report.period_end,
        source=source,
        category=category,
        title=report.schedule_name,
    )
    chart = render.chart_png(stats)
    report.stats = stats
    report.chart_png = chart
    report.html = render.html_body(stats)
    report.csv = render.csv_text(stats)
    report.pdf = render.pdf_bytes(stats, chart)


@transaction.atomic
def _report_generate(*, org: Organization, report_id: int) -> None:
    report = (
        Report.objects.for_org(org)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("schedule")
        .filter(pk=report_id, status=Report.Status.CLAIMED)
        .first()
    )
    if report is None:
        return
    _report_files(org, report)
    report.recipients = (
        selectors.schedule_recipients(schedule=report.schedule) if report.schedule else []
    )
    report.status = Report.Status.READY
    report.generated_at = timezone.now()
    report.save(
        update_fields=[
            "stats",
            "chart_png",
            "html",
            "csv",
            "pdf",
            "recipients",
            "status",
            "generated_at",
        ]
    )
    # In this transaction: subscribers hear of the report if and only if it exists.
    webhook_emit(
        org=org,
        event=WebhookEvent.REPORT_READY,
        event_id=f"report.ready:{report.pk}",
        data={
            "report_id": report.pk,
            "schedule_id": report.schedule_id,
            "period_start": report.period_start.isoformat(),
            "period_end": report.period_end.isoformat(),
            "total": report.stats["total"],
            "sentiment": report.stats["sentiment"],
        },
    )


def _report_send(*, org: Organization, report_id: int) -> bool:
    try:
        with transaction.atomic():
            report = (
                Report.objects.for_org(org)
                .select_for_update(skip_locked=True)
                .filter(pk=report_id, status=Report.Status.READY)
                .first()
            )
            if report is None:
                return False
            if report.recipients:
                _send_report_email(report)
            # Same transaction as the send: see the module docstring (at-least-once).
            report.status = Report.Status.SENT
            report.sent_at = timezone.now()
            report.send_attempts += 1
            report.last_error = ""
            report.save(update_fields=["status", "sent_at", "send_attempts", "last_error"])
            return True
    except Exception as exc:
        _report_send_failed(org=org, report_id=report_id, error=exc)
        raise


@transaction.atomic
def _report_send_failed(*, org: Organization, report_id: int, error: Exception) -> None:
    report = Report.objects.for_org(org).select_for_update().get(pk=report_id)
    report.send_attempts += 1
    report.last_error = f"{type(error).__name__}: {error}"[:2000]
    if report.send_attempts >= REPORT_MAX_SEND_ATTEMPTS:
        report.status = Report.Status.FAILED
    report.save(update_fields=["send_attempts", "last_error", "status"])


def _send_report_email(report: Report) -> None:
    stats = report.stats
    stem = report.file_stem
    delivery.send_html_email(
        subject=f"{stats['org']}: {report.schedule_name} · {stats['period_label']}",
        to=list(report.recipients),
        text=render.text_body(stats),
        html=report.html,
        inline_png=bytes(report.chart_png),
        attachments=(
            delivery.Attachment(f"{stem}.pdf", bytes(report.pdf), "application/pdf"),
            delivery.Attachment(f"{stem}.csv", report.csv, "text/csv"),
        ),
        message_id=f"<report-{report.pk}@{_mail_domain()}>",
    )


def _mail_domain() -> str:
    sender = str(settings.DEFAULT_FROM_EMAIL)
    return sender.rsplit("@", 1)[-1].strip(" >") or "puna.local"


@transaction.atomic
def report_send_now(*, schedule: ReportSchedule, now: dt.datetime | None = None) -> Report:
    """Build and email the schedule's most recent complete period now, as a separate
    ("manual") report: it does not count as, or replace, the scheduled one."""
    now = now or timezone.now()
    period = _latest_period(schedule, now)
    report = Report.objects.create(
        organization_id=schedule.organization_id,
        schedule=schedule,
        schedule_name=schedule.name,
        kind=Report.Kind.MANUAL,
        period_start=period.start,
        period_end=period.end,
        timezone=schedule.organization.timezone,
        created_at=now,
    )
    report_queue(report_id=report.pk, org_id=schedule.organization_id)
    return report


def report_export(*, report: Report, kind: str) -> tuple[bytes | str, str]:
    """A built report's `pdf`, `csv` or `html` as (content, mimetype); every download is
    recorded in the org's audit trail (reports carry the org's feedback numbers)."""
    content: bytes | str
    if kind == "csv":
        content, mimetype = report.csv, "text/csv; charset=utf-8"
    elif kind == "html":
        content, mimetype = report.html, "text/html; charset=utf-8"
    elif kind == "pdf":
        content, mimetype = bytes(report.pdf), "application/pdf"
    else:
        raise ValidationError({"file": "Choose pdf, csv or html."})
    audit_record(
        org=report.organization,
        action=AuditAction.EXPORT_DOWNLOADED,
        target=report,
        target_label=f"{report.file_stem}.{kind}",
        metadata={"export": "report", "format": kind},
    )
    return content, mimetype


def _latest_period(s: ReportSchedule, now: dt.datetime) -> schedule.Period:
    tz = ZoneInfo(s.organization.timezone)
    rule = s.rule()
    period = schedule.latest_due(rule, tz, now)
    return period or schedule.period_for_due_day(rule, now.astimezone(tz).date(), tz)


def report_preview(*, schedule: ReportSchedule, now: dt.datetime | None = None) -> dict[str, Any]:
    """What "send now" would send, rendered but neither stored nor sent (a read)."""
    period = _latest_period(schedule, now or timezone.now())
    stats = selectors.report_snapshot(
        org=schedule.organization,
        since=period.start,
        until=period.end,
        source=schedule.source,
        category=schedule.category,
        title=schedule.name,
    )
    chart = base64.b64encode(render.chart_png(stats)).decode()
    return {
        "stats": stats,
        "html": render.html_body(stats, chart_src=f"data:image/png;base64,{chart}"),
    }


# --- webhooks ------------------------------------------------------------------------------------


def _clean_webhook(values: dict[str, Any]) -> None:
    errors: dict[str, str] = {}
    url = str(values.get("url") or "").strip()
    try:
        URLValidator(schemes=["https"] if settings.PUNA_ENV == "production" else ["http", "https"])(
            url
        )
    except ValidationError:
        errors["url"] = "Give a full https:// URL."
    else:
        if urlsplit(url).username or urlsplit(url).password:
            errors["url"] = (
                "Put credentials in your receiver's check of our signature, not the URL."
            )
    values["url"] = url
    events = list(dict.fromkeys(values.get("events") or []))
    if not events or any(e not in WebhookEvent.values for e in events):
        errors["events"] = f"Choose one or more of {', '.join(WebhookEvent.values)}."
    values["events"] = events
    values["description"] = str(values.get("description") or "").strip()[:200]
    if errors:
        raise ValidationError(errors)


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


@transaction.atomic
def webhook_create(
    *,
    org: Organization,
    url: str,
    events: Iterable[str],
    description: str = "",
    enabled: bool = True,
    created_by: User | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret, which is shown only now."""
    values: dict[str, Any] = {"url": url, "events": list(events), "description": description}
    _clean_webhook(values)
    secret = _new_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=org, secret=secret, enabled=enabled, created_by=created_by, **values
    )
    audit_record(
        org=org,
        action=AuditAction.WEBHOOK_CREATED,
        target=endpoint,
        target_label=endpoint.url,
        metadata={"events": endpoint.events},
        user=created_by,
    )
    return endpoint, secret


@transaction.atomic
def webhook_update(*, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    """Change an endpoint's url, events, description or enabled flag."""
    allowed = {"url", "events", "description", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Unknown field."))
    values: dict[str, Any] = {
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        **{k: v for k, v in changes.items() if k != "enabled"},
    }
    _clean_webhook(values)
    for field, value in values.items():
        setattr(endpoint, field, value)
    endpoint.enabled = bool(changes.get("enabled", endpoint.enabled))
    endpoint.save(update_fields=[*values, "enabled"])
    audit_record(
        org=endpoint.organization,
        action=AuditAction.WEBHOOK_UPDATED,
        target=endpoint,
        target_label=endpoint.url,
        metadata={"fields": sorted(changes)},
    )
    return endpoint


@transaction.atomic
def webhook_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """Replace the signing secret; returns the new one, shown only now."""
    endpoint.secret = _new_secret()
    endpoint.save(update_fields=["secret"])
    audit_record(
        org=endpoint.organization,
        action=AuditAction.WEBHOOK_SECRET_ROTATED,
        target=endpoint,
        target_label=endpoint.url,
    )
    return endpoint.secret


@transaction.atomic
def webhook_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its delivery log."""
    audit_record(
        org=endpoint.organization,
        action=AuditAction.WEBHOOK_DELETED,
        target=endpoint,
        target_label=endpoint.url,
    )
    endpoint.delete()


@transaction.atomic
def webhook_emit(
    *, org: Organization, event: str, event_id: str, data: dict[str, Any]
) -> list[WebhookDelivery]:
    """Record a delivery of `event` for each enabled endpoint subscribed to it and queue
    them; an `event_id` already recorded for an endpoint is not queued again."""
    from reports.tasks import deliver_webhook

    created = []
    endpoints = WebhookEndpoint.objects.for_org(org).filter(enabled=True, events__contains=[event])
    for endpoint in endpoints:
        payload = {
            "id": event_id,
            "type": event,
            "created_at": timezone.now().isoformat(),
            "org": org.slug,
            "data": data,
        }
        delivery_row, is_new = WebhookDelivery.objects.get_or_create(
            organization=org,
            endpoint=endpoint,
            event_id=event_id,
            defaults={"event": event, "payload": payload},
        )
        if is_new:
            deliver_webhook.configure(lock=f"webhook-{delivery_row.pk}").defer(
                delivery_id=delivery_row.pk, org_id=org.pk
            )
            created.append(delivery_row)
    return created


def webhook_attempt(*, org: Organization, delivery_id: int) -> str:
    """Make one attempt at a pending delivery and log it; returns the delivery's status.

    PENDING afterwards means "try again later" (the task raises so procrastinate retries it
    with exponential backoff); after `WEBHOOK_MAX_ATTEMPTS` attempts it is FAILED; "gone"
    means the delivery was deleted with its endpoint.
    """
    with transaction.atomic():
        row = (
            WebhookDelivery.objects.for_org(org)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if row is None:
            # Locked: another attempt is running, so try later. Gone: the endpoint was deleted.
            exists = WebhookDelivery.objects.for_org(org).filter(pk=delivery_id).exists()
            return WebhookDelivery.Status.PENDING if exists else "gone"
        if row.status != WebhookDelivery.Status.PENDING:
            return row.status
        result = delivery.post_signed(
            url=row.endpoint.url,
            secret=row.endpoint.secret,
            body=delivery.encode_payload(row.payload),
            headers={
                "Puna-Event": row.event,
                "Puna-Event-Id": row.event_id,
                "Puna-Delivery": str(row.pk),
            },
        )
        now = timezone.now()
        row.attempts += 1
        row.last_status_code = result.status_code
        row.last_error = result.error
        row.attempts_log = [
            *row.attempts_log,
            {
                "at": now.isoformat(),
                "status_code": result.status_code,
                "error": result.error,
                "ms": result.elapsed_ms,
            },
        ]
        if result.ok:
            row.status = WebhookDelivery.Status.SUCCEEDED
            row.delivered_at = now
        elif row.attempts >= WEBHOOK_MAX_ATTEMPTS:
            row.status = WebhookDelivery.Status.FAILED
        row.save(
            update_fields=[
                "attempts",
                "last_status_code",
                "last_error",
                "attempts_log",
                "status",
                "delivered_at",
            ]
        )
        return row.status


def webhooks_flagged_scan(*, now: dt.datetime | None = None) -> int:
    """Emit `feedback.flagged` for flagged items that subscribed endpoints have not had yet.

    A scan (not a hook in ingestion) so feedback stays unaware of webhooks; the per-endpoint
    unique event id makes repeated scans harmless. Returns how many deliveries were queued.
    """
    now = now or timezone.now()
    queued = 0
    with dangerously_all_orgs("the scan finds every org's subscribed endpoints"):
        endpoints = list(
            WebhookEndpoint.objects.filter(
                enabled=True, events__contains=[WebhookEvent.FEEDBACK_FLAGGED]
            ).select_related("organization")
        )
    by_org: dict[int, tuple[Organization, dt.datetime]] = {}
    for endpoint in endpoints:
        since = max(endpoint.created_at, now - FLAGGED_LOOKBACK)
        org, earliest = by_org.get(endpoint.organization_id, (endpoint.organization, since))
        by_org[endpoint.organization_id] = (org, min(earliest, since))
    for org, since in by_org.values():
        with org_context(org):
            items = selectors.flagged_feedback_since(org=org, since=since, limit=FLAGGED_BATCH)
            known = set(
                WebhookDelivery.objects.for_org(org)
                .filter(event_id__in=[f"feedback.flagged:{fb.pk}" for fb in items])
                .values_list("event_id", flat=True)
            )
            for fb in items:
                event_id = f"feedback.flagged:{fb.pk}"
                if event_id in known:
                    continue
                queued += len(
                    webhook_emit(
                        org=org,
                        event=WebhookEvent.FEEDBACK_FLAGGED,
                        event_id=event_id,
                        data={
                            "feedback_id": fb.pk,
                            "source": fb.source,
                            "reasons": list(fb.reasons),
                            "anomaly_score": fb.anomaly_score,
                            "received_at": fb.received_at.isoformat(),
                            "text": fb.text,
                        },
                    )
                )
    return queued


# --- alerts --------------------------------------------------------------------------------------


def _findings(org: Organization, kind: str, rule: Any, now: dt.datetime) -> list[Finding]:
    window = dt.timedelta(minutes=rule.window_minutes)
    if kind == AlertKind.FLAGGED_BURST:
        groups = selectors.flagged_groups(org=org, start=now - window, end=now)
        return flagged_bursts(groups=groups, min_volume=rule.min_volume)
    counts = selectors.window_counts(org=org, end=now, window=window, baseline_days=BASELINE_DAYS)
    if kind == AlertKind.VOLUME_SPIKE:
        found = volume_spike(
            total=counts["total"],
            baseline_totals=counts["baseline_totals"],
            min_volume=rule.min_volume,
            ratio=rule.threshold,
        )
    else:
        found = negative_share_spike(
            total=counts["total"],
            negative=counts["negative"],
            baseline_totals=counts["baseline_totals"],
            baseline_negatives=counts["baseline_negatives"],
            min_volume=rule.min_volume,
            min_increase=rule.threshold,
        )
    return [found] if found else []


def alerts_detect(*, org: Organization, now: dt.datetime | None = None) -> list[AlertEvent]:
    """Run the org's detectors over the window ending `now`; record and announce what fired
    (once per cooldown per kind and subject)."""
    from reports.tasks import notify_alert

    now = (now or timezone.now()).replace(second=0, microsecond=0)
    fired = []
    for kind, rule in selectors.alert_rules_for(org=org).items():
        if not rule.enabled:
            continue
        for finding in _findings(org, kind, rule, now):
            cooldown_start = now - dt.timedelta(minutes=rule.cooldown_minutes)
            if (
                AlertEvent.objects.for_org(org)
                .filter(kind=kind, subject=finding.subject, created_at__gt=cooldown_start)
                .exists()
            ):
                continue
            try:
                with transaction.atomic():
                    event = AlertEvent.objects.create(
                        organization=org,
                        kind=kind,
                        subject=finding.subject,
                        window_start=now - dt.timedelta(minutes=rule.window_minutes),
                        window_end=now,
                        observed=finding.observed,
                        baseline=finding.baseline,
                        details=finding.details,
                        created_at=now,
                    )
                    webhook_emit(
                        org=org,
                        event=WebhookEvent.ALERT_FIRED,
                        event_id=f"alert.fired:{event.pk}",
                        data=_alert_data(event),
                    )
                    notify_alert.configure(lock=f"alert-{event.pk}").defer(
                        event_id=event.pk, org_id=org.pk
                    )
            except IntegrityError:
                continue  # a concurrent run recorded this window already
            fired.append(event)
    return fired


def alerts_detect_all(*, now: dt.datetime | None = None) -> int:
    """Run detection for every org that received feedback in the last day."""
    now = now or timezone.now()
    count = 0
    for org in Organization.objects.order_by("pk"):
        with org_context(org):
            if not selectors.has_recent_feedback(org=org, since=now - dt.timedelta(days=1)):
                continue
            count += len(alerts_detect(org=org, now=now))
    return count


def _alert_data(event: AlertEvent) -> dict[str, Any]:
    return {
        "alert_id": event.pk,
        "kind": event.kind,
        "subject": event.subject,
        "window_start": event.window_start.isoformat(),
        "window_end": event.window_end.isoformat(),
        "observed": event.observed,
        "baseline": event.baseline,
        "details": event.details,
    }


def alert_describe(event: AlertEvent) -> str:
    if event.kind == AlertKind.NEGATIVE_SPIKE:
        return (
            f"{event.observed:.0%} of the last {event.details.get('total')} comments are "
            f"negative (usually {event.baseline:.0%})."
        )
    if event.kind == AlertKind.VOLUME_SPIKE:
        return f"{event.observed:.0f} comments in the window (usually about {event.baseline:.0f})."
    return f"{event.observed:.0f} flagged items from {event.subject} in the window."


def alert_notify(*, org: Organization, event_id: int) -> bool:
    """Email an alert to the org's owners and admins (and the rule's addresses), once.
    True if this call sent it. At-least-once, like reports (see the module docstring)."""
    with transaction.atomic():
        event = (
            AlertEvent.objects.for_org(org)
            .select_for_update(skip_locked=True)
            .filter(pk=event_id, notified_at__isnull=True)
            .first()
        )
        if event is None:
            return False
        rule = selectors.alert_rules_for(org=org)[event.kind]
        recipients = selectors.alert_recipients(org=org, rule=rule if rule.pk else None)
        if recipients:
            text = alert_describe(event)
            delivery.send_html_email(
                subject=f"[Puna] {org.name}: {event.get_kind_display()}",
                to=recipients,
                text=text,
                html=f"<p>{escape(text)}</p>",
                message_id=f"<alert-{event.pk}@{_mail_domain()}>",
            )
        event.notified_at = timezone.now()
        event.save(update_fields=["notified_at"])
        return True
