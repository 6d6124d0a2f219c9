"""Dashboard pages; included into `org_patterns` (under /o/<org_slug>/) in saas/urls.py."""

from __future__ import annotations

from django.urls import path

from reports import views

urlpatterns = [
    path("reports/", views.reports_home, name="reports"),
    path("reports/history/", views.report_history, name="report-history"),
    path(
        "reports/<int:report_id>/download/<str:kind>/",
        views.report_download,
        name="report-download",
    ),
    path("reports/schedules/<int:schedule_id>/", views.schedule_edit, name="report-schedule"),
    path(
        "reports/schedules/<int:schedule_id>/delete/",
        views.schedule_delete,
        name="report-schedule-delete",
    ),
    path(
        "reports/schedules/<int:schedule_id>/send-now/",
        views.schedule_send_now,
        name="report-schedule-send-now",
    ),
    path(
        "reports/schedules/<int:schedule_id>/preview/",
        views.schedule_preview,
        name="report-schedule-preview",
    ),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<int:endpoint_id>/delete/", views.webhook_delete, name="webhook-delete"),
]
