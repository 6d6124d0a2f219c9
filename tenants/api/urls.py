from __future__ import annotations

from rest_framework.routers import SimpleRouter

from tenants.api import views


class OptionalSlashRouter(SimpleRouter):
    """Routes answer with or without a trailing slash (`/api/v1/feedback` is canonical)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("org", views.CurrentOrgViewSet, basename="org")
router.register("members", views.MembershipViewSet, basename="member")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("api-keys", views.ApiKeyViewSet, basename="apikey")
router.register("audit", views.AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
