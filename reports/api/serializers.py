from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reports.models import (
    AlertEvent,
    Frequency,
    Report,
    ReportSchedule,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from reports.selectors import schedule_next_due
from saas.serializers import StrictCharField, StrictInputSerializer


class ScheduleInSerializer(StrictInputSerializer):
    """Schedule input. Member ids are checked against the org by the service."""

    name = StrictCharField(max_length=100)
    frequency = serializers.ChoiceField(choices=Frequency.choices)
    hour = serializers.IntegerField(min_value=0, max_value=23)
    weekday = serializers.IntegerField(min_value=0, max_value=6, required=False, allow_null=True)
    day_of_month = serializers.IntegerField(
        min_value=1, max_value=31, required=False, allow_null=True
    )
    recipient_member_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=50
    )
    recipient_emails = serializers.ListField(
        child=serializers.EmailField(), required=False, max_length=50
    )
    source = StrictCharField(  # type: ignore[assignment]  # a field named like Field.source
        max_length=50, required=False, allow_blank=True
    )
    category = StrictCharField(max_length=60, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class ScheduleSerializer(serializers.ModelSerializer[ReportSchedule]):
    recipient_member_ids = serializers.SerializerMethodField()
    next_due_at = serializers.SerializerMethodField()

    class Meta:
        model = ReportSchedule
        fields = (
            "id",
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
            "next_due_at",
            "created_at",
            "updated_at",
        )

    def get_recipient_member_ids(self, obj: ReportSchedule) -> list[int]:
        return sorted(m.pk for m in obj.recipient_members.all())

    def get_next_due_at(self, obj: ReportSchedule) -> str | None:
        due = schedule_next_due(schedule=obj)
        return due.isoformat() if due else None


# Plain strings in the schema: as enums they collide with other apps' `kind`/`status`/`event`
# enums, and naming them needs ENUM_NAME_OVERRIDES in settings (the values are in the docs).
class ReportSerializer(serializers.ModelSerializer[Report]):
    kind = serializers.CharField(read_only=True, help_text="scheduled or manual")
    status = serializers.CharField(read_only=True, help_text="claimed, ready, sent or failed")

    class Meta:
        model = Report
        fields = (
            "id",
            "schedule",
            "schedule_name",
            "kind",
            "status",
            "period_start",
            "period_end",
            "timezone",
            "created_at",
            "generated_at",
            "sent_at",
            "send_attempts",
            "last_error",
            "recipients",
        )


class ReportDetailSerializer(ReportSerializer):
    class Meta(ReportSerializer.Meta):
        fields = (*ReportSerializer.Meta.fields, "stats")  # type: ignore[assignment]


class ReportFilterSerializer(StrictInputSerializer):
    schedule = serializers.IntegerField(required=False, min_value=1)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)


class DownloadQuerySerializer(StrictInputSerializer):
    file = serializers.ChoiceField(choices=["pdf", "csv", "html"], default="pdf")


class PreviewSerializer(serializers.Serializer[Any]):
    stats = serializers.DictField()
    html = serializers.CharField()


class WebhookInSerializer(StrictInputSerializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1
    )
    description = StrictCharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class WebhookSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    class Meta:
        model = WebhookEndpoint
        fields = ("id", "url", "description", "events", "enabled", "created_at")


class WebhookCreatedSerializer(WebhookSerializer):
    """The only response that carries the signing secret."""

    secret = serializers.CharField()

    class Meta(WebhookSerializer.Meta):
        fields = (*WebhookSerializer.Meta.fields, "secret")  # type: ignore[assignment]


class DeliveryFilterSerializer(StrictInputSerializer):
    endpoint = serializers.IntegerField(required=False, min_value=1)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    event = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True, help_text="pending, succeeded or failed")

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "endpoint",
            "event",
            "event_id",
            "status",
            "attempts",
            "attempts_log",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "payload",
        )


class AlertEventSerializer(serializers.ModelSerializer[AlertEvent]):
    class Meta:
        model = AlertEvent
        fields = (
            "id",
            "kind",
            "subject",
            "window_start",
            "window_end",
            "observed",
            "baseline",
            "details",
            "created_at",
            "notified_at",
        )
