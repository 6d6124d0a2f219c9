"""Scheduled reports, alerts and outbound webhooks of an organization."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from reports import schedule
from tenants.models import Membership, OrgOwnedModel


class Frequency(models.TextChoices):
    DAILY = schedule.Frequency.DAILY, "Daily"
    WEEKLY = schedule.Frequency.WEEKLY, "Weekly"
    MONTHLY = schedule.Frequency.MONTHLY, "Monthly"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class ReportSchedule(OrgOwnedModel):
    """When to build a summary, of what, and for whom. Times are in the org's time zone."""

    name = models.CharField(max_length=100)
    frequency = models.CharField(max_length=8, choices=Frequency.choices)
    weekday = models.PositiveSmallIntegerField(null=True, blank=True, choices=Weekday.choices)
    day_of_month = models.PositiveSmallIntegerField(null=True, blank=True)
    hour = models.PositiveSmallIntegerField(default=8)
    recipient_members = models.ManyToManyField(Membership, blank=True, related_name="+")
    recipient_emails = ArrayField(models.EmailField(), default=list, blank=True)
    source = models.CharField(max_length=50, blank=True)
    category = models.CharField(max_length=60, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Catch-up never reaches back before this: a new schedule does not send old periods.
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now)

    if TYPE_CHECKING:
        organization_id: int

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="schedule_org_created_idx"),
            models.Index(fields=["enabled"], name="schedule_enabled_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.frequency})"

    def rule(self) -> schedule.Rule:
        """The pure schedule arithmetic's view of this row."""
        return schedule.Rule(
            frequency=self.frequency,
            hour=self.hour,
            weekday=self.weekday,
            day_of_month=self.day_of_month,
        )


class Report(OrgOwnedModel):
    """One period's report. Scheduled ones are unique per (schedule, period_start).

    State machine: CLAIMED (the row exists, nothing built) → READY (snapshot and files stored)
    → SENT (`sent_at` written in the transaction that sent the email). FAILED after too many
    send attempts. Manual ("send now") reports follow the same states without the uniqueness.
    """

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        MANUAL = "manual", "Sent on request"

    class Status(models.TextChoices):
        CLAIMED = "claimed", "Claimed"
        READY = "ready", "Ready"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    schedule = models.ForeignKey(
        ReportSchedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    schedule_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SCHEDULED)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CLAIMED)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    timezone = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)
    generated_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    recipients = ArrayField(models.EmailField(), default=list, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    html = models.TextField(blank=True)
    csv = models.TextField(blank=True)
    pdf = models.BinaryField(default=b"", blank=True)
    chart_png = models.BinaryField(default=b"", blank=True)

    if TYPE_CHECKING:
        organization_id: int
        schedule_id: int | None

    class Meta:
        constraints: ClassVar = [
            # The exactly-once claim: INSERT ... ON CONFLICT DO NOTHING against this.
            models.UniqueConstraint(
                fields=["organization", "schedule", "period_start"],
                condition=Q(kind="scheduled"),
                name="report_schedule_period_unique",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["organization", "-period_start", "-id"], name="report_org_idx"),
            models.Index(
                fields=["status"],
                condition=Q(status__in=["claimed", "ready"]),
                name="report_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_name} {self.period_start:%Y-%m-%d} ({self.status})"

    @property
    def file_stem(self) -> str:
        """Download name: the period's first day as the org saw it, not in UTC."""
        local = self.period_start.astimezone(ZoneInfo(self.timezone))
        return f"puna-report-{local:%Y-%m-%d}"


class AlertKind(models.TextChoices):
    NEGATIVE_SPIKE = "negative_spike", "Negative share spike"
    VOLUME_SPIKE = "volume_spike", "Volume spike"
    FLAGGED_BURST = "flagged_burst", "Burst of flagged items"


class AlertRule(OrgOwnedModel):
    """An org's settings for one detector. Without a row the detector runs with defaults."""

    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    enabled = models.BooleanField(default=True)
    # Defaults per kind live in `reports.detectors.DEFAULT_RULES`.
    window_minutes = models.PositiveIntegerField()
    # Below this many items in the window the detector stays quiet, whatever the ratio.
    min_volume = models.PositiveIntegerField()
    # Volume: times the baseline; negative share: increase of the share (0.2 = 20 points).
    threshold = models.FloatField()
    cooldown_minutes = models.PositiveIntegerField(default=180)
    notify_emails = ArrayField(models.EmailField(), default=list, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "kind"], name="alertrule_kind_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({'on' if self.enabled else 'off'})"


class AlertEvent(OrgOwnedModel):
    """A detector fired. `notified_at` is written in the transaction that sent the email."""

    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    # What fired within the kind, e.g. "source:form"; "" for org-wide detectors.
    subject = models.CharField(max_length=120, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    observed = models.FloatField()
    baseline = models.FloatField()
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=now)
    notified_at = models.DateTimeField(null=True, blank=True)

    if TYPE_CHECKING:
        organization_id: int

    class Meta:
        constraints: ClassVar = [
            # Two detection runs over the same window cannot both record it.
            models.UniqueConstraint(
                fields=["organization", "kind", "subject", "window_end"],
                name="alertevent_window_unique",
            )
        ]
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="alertevent_org_idx"),
            models.Index(
                fields=["organization", "kind", "subject", "-created_at"],
                name="alertevent_cooldown_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} at {self.window_end:%Y-%m-%d %H:%M}"


class WebhookEvent(models.TextChoices):
    ALERT_FIRED = "alert.fired", "Alert fired"
    REPORT_READY = "report.ready", "Report ready"
    FEEDBACK_FLAGGED = "feedback.flagged", "Feedback flagged"


class WebhookEndpoint(OrgOwnedModel):
    """An org's URL that receives signed events. The secret is shown once, at creation."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=32, choices=WebhookEvent.choices))
    # Kept in the clear because we must compute HMACs with it; never returned after creation.
    secret = models.CharField(max_length=80)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    if TYPE_CHECKING:
        organization_id: int

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="webhook_org_idx")
        ]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(OrgOwnedModel):
    """One event for one endpoint, with every attempt logged in `attempts_log`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=32, choices=WebhookEvent.choices)
    # Receivers deduplicate on this; we use it so one event is never queued twice.
    event_id = models.CharField(max_length=80)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    attempts_log = models.JSONField(default=list)  # [{"at", "status_code", "error", "ms"}]
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    if TYPE_CHECKING:
        organization_id: int
        endpoint_id: int

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization", "endpoint", "event_id"], name="delivery_event_unique"
            )
        ]
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at", "-id"], name="delivery_org_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status})"
