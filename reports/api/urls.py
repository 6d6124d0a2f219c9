from __future__ import annotations

from reports.api import views
from tenants.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("report-schedules", views.ReportScheduleViewSet, basename="report-schedule")
router.register("reports", views.ReportViewSet, basename="report")
router.register("webhooks", views.WebhookEndpointViewSet, basename="webhook")
router.register("webhook-deliveries", views.WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("alerts", views.AlertEventViewSet, basename="alert")

urlpatterns = router.urls
