from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from feedback.views import anomalies as anomaly_views
from feedback.views import explorer as explorer_views
from feedback.views import imports as import_views
from feedback.views import overview as overview_views
from inference import views as inference_views
from monitoring import views as monitoring_views
from saas import views as saas_views
from tenants import views as tenant_views


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request: Request) -> Response:
    """Where the API's documentation lives."""
    return Response({"schema": "/api/v1/schema", "docs": "/api/v1/docs"})


org_patterns: list[URLPattern | URLResolver] = [
    path("", overview_views.overview, name="org-overview"),
    path("feedback/", explorer_views.feedback_explorer, name="feedback-list"),
    path("feedback/export.csv", explorer_views.feedback_export, name="feedback-export"),
    path("feedback/bulk/", explorer_views.feedback_bulk_status, name="feedback-bulk"),
    path("feedback/<int:feedback_id>/", explorer_views.feedback_detail, name="feedback-detail"),
    path(
        "feedback/<int:feedback_id>/review/",
        explorer_views.feedback_review,
        name="feedback-review",
    ),
    path("anomalies/", anomaly_views.anomalies, name="anomalies"),
    path("imports/", import_views.import_upload, name="imports"),
    path("imports/<int:import_id>/", import_views.import_detail, name="import-detail"),
    path("imports/<int:import_id>/progress/", import_views.import_progress, name="import-progress"),
    path("imports/<int:import_id>/errors.csv", import_views.import_errors, name="import-errors"),
    path("models/", inference_views.models_page, name="models"),
    path("models/label-sets/new/", inference_views.label_set_create, name="label-set-create"),
    path(
        "models/label-sets/<int:label_set_id>/",
        inference_views.label_set_detail,
        name="label-set",
    ),
    path(
        "models/label-sets/<int:label_set_id>/train/",
        inference_views.label_set_train,
        name="label-set-train",
    ),
    path(
        "models/runs/<int:run_id>/progress/",
        inference_views.training_run_progress,
        name="training-run-progress",
    ),
    path(
        "models/versions/<int:version_id>/activate/",
        inference_views.model_version_activate,
        name="model-version-activate",
    ),
    path("models/rollback/", inference_views.model_version_rollback, name="model-rollback"),
    path("models/deactivate/", inference_views.model_version_deactivate, name="model-deactivate"),
    path("members/", tenant_views.members, name="members"),
    path("members/<int:membership_id>/role/", tenant_views.member_role, name="member-role"),
    path("members/<int:membership_id>/remove/", tenant_views.member_remove, name="member-remove"),
    path("leave/", tenant_views.org_leave, name="org-leave"),
    path(
        "invitations/<int:invitation_id>/revoke/",
        tenant_views.invitation_revoke,
        name="invitation-revoke",
    ),
    path("api-keys/", tenant_views.api_keys, name="api-keys"),
    path("api-keys/<int:key_id>/revoke/", tenant_views.api_key_revoke, name="api-key-revoke"),
    path("settings/", tenant_views.org_settings, name="org-settings"),
    path("audit/", tenant_views.audit_log, name="audit-log"),
    path("monitoring/", monitoring_views.org_monitoring, name="org-monitoring"),
    path("", include("reports.urls")),
]

account_patterns: list[URLPattern | URLResolver] = [
    path("signup/", tenant_views.signup, name="signup"),
    path("login/", tenant_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", tenant_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="tenants/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="tenants/password_reset_confirm.html"
        ),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="tenants/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    path("invitations/<str:token>/", tenant_views.invitation_accept, name="invitation-accept"),
]

api_patterns: list[URLPattern | URLResolver] = [
    path("", api_root, name="api-root"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("tenants.api.urls")),
    path("", include("feedback.api.urls")),
    path("", include("inference.api.urls")),
    path("", include("reports.api.urls")),
]

urlpatterns = [
    path("", tenant_views.home, name="home"),
    path("", include(account_patterns)),
    path("o/<slug:org_slug>/", include(org_patterns)),
    path("api/v1/", include(api_patterns)),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs-short"),
    path("ops/admin/", admin.site.urls),
    path("ops/monitoring/", monitoring_views.ops_monitoring, name="ops-monitoring"),
    path("metrics", monitoring_views.metrics, name="metrics"),
    path("healthz", saas_views.healthz, name="healthz"),
    path("readyz", saas_views.readyz, name="readyz"),
]

handler404 = "saas.errors.page_not_found"
handler500 = "saas.errors.server_error"
