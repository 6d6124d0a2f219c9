"""Operators' admin for reports and alerts (staff only). Read-mostly: tenants use the app."""

from __future__ import annotations

from django.contrib import admin

from reports.models import (
    AlertEvent,
    AlertRule,
    Report,
    ReportSchedule,
    WebhookDelivery,
    WebhookEndpoint,
)


@admin.register(ReportSchedule)
class ReportScheduleAdmin(admin.ModelAdmin[ReportSchedule]):
    list_display = ("name", "organization", "frequency", "hour", "enabled", "created_at")
    list_filter = ("frequency", "enabled")
    search_fields = ("name", "organization__slug")
    raw_id_fields = ("organization", "created_by", "recipient_members")


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin[Report]):
    list_display = ("schedule_name", "organization", "period_start", "status", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("schedule_name", "organization__slug")
    raw_id_fields = ("organization", "schedule")
    exclude = ("pdf", "chart_png", "html", "csv")
    readonly_fields = ("stats", "recipients", "last_error")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin[AlertRule]):
    list_display = ("organization", "kind", "enabled", "window_minutes", "min_volume", "threshold")
    list_filter = ("kind", "enabled")
    raw_id_fields = ("organization",)


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin[AlertEvent]):
    list_display = ("organization", "kind", "subject", "observed", "baseline", "created_at")
    list_filter = ("kind",)
    raw_id_fields = ("organization",)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin[WebhookEndpoint]):
    list_display = ("url", "organization", "enabled", "created_at")
    raw_id_fields = ("organization", "created_by")
    # The secret belongs to the org; operators never need to read it.
    exclude = ("secret",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = ("event", "endpoint", "organization", "status", "attempts", "created_at")
    list_filter = ("status", "event")
    raw_id_fields = ("organization", "endpoint")
