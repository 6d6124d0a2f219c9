from __future__ import annotations

from feedback.api import views
from tenants.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("feedback", views.FeedbackViewSet, basename="feedback")
router.register("classify", views.ClassifyViewSet, basename="classify")
router.register("stats", views.StatsViewSet, basename="stats")
router.register("usage", views.UsageViewSet, basename="usage")
router.register("imports", views.ImportViewSet, basename="import")

urlpatterns = router.urls
