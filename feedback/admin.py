"""Operators' admin for feedback (staff only). Every list filters by organization."""

from __future__ import annotations

from django.contrib import admin

from feedback.models import Feedback, ImportJob, ReviewEvent, UsagePeriod


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin[Feedback]):
    list_display = (
        "id",
        "organization",
        "received_at",
        "source",
        "sentiment",
        "language",
        "flagged",
        "status",
    )
    list_filter = ("organization", "sentiment", "language", "flagged", "status")
    search_fields = ("text", "external_id")
    date_hierarchy = "received_at"
    raw_id_fields = ("organization", "reviewed_by", "import_job")
    readonly_fields = ("search",)
    list_select_related = ("organization",)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin[ImportJob]):
    list_display = (
        "id",
        "organization",
        "filename",
        "status",
        "processed_rows",
        "total_rows",
        "created_at",
    )
    list_filter = ("organization", "status")
    exclude = ("errors",)


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin[ReviewEvent]):
    list_display = ("id", "organization", "feedback", "actor", "created_at")
    list_filter = ("organization",)
    raw_id_fields = ("feedback", "actor", "organization")


@admin.register(UsagePeriod)
class UsagePeriodAdmin(admin.ModelAdmin[UsagePeriod]):
    list_display = ("organization", "month", "items")
    list_filter = ("organization", "month")
