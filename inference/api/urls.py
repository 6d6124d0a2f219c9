from __future__ import annotations

from inference.api import views
from tenants.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("label-sets", views.LabelSetViewSet, basename="labelset")
router.register("training-runs", views.TrainingRunViewSet, basename="trainingrun")
router.register("models", views.ModelVersionViewSet, basename="modelversion")

urlpatterns = router.urls
