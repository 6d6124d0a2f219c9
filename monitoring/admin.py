from __future__ import annotations

from django.contrib import admin

from monitoring.models import RouteAlert


@admin.register(RouteAlert)
class RouteAlertAdmin(admin.ModelAdmin[RouteAlert]):
    list_display = ("route", "method", "p95_ms", "started_at", "notified_at", "resolved_at")
    list_filter = ("resolved_at",)
    search_fields = ("route",)
    readonly_fields = (
        "route",
        "method",
        "threshold_ms",
        "started_at",
        "last_breach_at",
        "p95_ms",
        "notified_at",
    )
