"""The reports API: thin views over reports.services / reports.selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from reports import selectors, services
from reports.api.serializers import (
    AlertEventSerializer,
    DeliveryFilterSerializer,
    DeliverySerializer,
    DownloadQuerySerializer,
    PreviewSerializer,
    ReportDetailSerializer,
    ReportFilterSerializer,
    ReportSerializer,
    ScheduleInSerializer,
    ScheduleSerializer,
    WebhookCreatedSerializer,
    WebhookInSerializer,
    WebhookSerializer,
)
from reports.models import AlertEvent, Report, ReportSchedule, WebhookDelivery, WebhookEndpoint
from tenants.api.base import OrgScopedViewSet


def _user(view: OrgScopedViewSet) -> Any:
    return view.membership.user if view.membership is not None else None


class ReportScheduleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """When the organization's summaries are built and who receives them."""

    resource = "reports"
    queryset = ReportSchedule.objects.all()
    serializer_class = ScheduleSerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.select_related("organization").prefetch_related("recipient_members")

    @extend_schema(request=ScheduleInSerializer, responses={201: ScheduleSerializer})
    def create(self, request: Request) -> Response:
        payload = ScheduleInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        created = services.schedule_create(
            org=self.org, created_by=_user(self), **payload.validated_data
        )
        return Response(ScheduleSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleInSerializer, responses=ScheduleSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        found = self.get_object()
        payload = ScheduleInSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        services.schedule_update(schedule=found, changes=dict(payload.validated_data))
        return Response(ScheduleSerializer(found).data)

    def perform_destroy(self, instance: ReportSchedule) -> None:
        services.schedule_delete(schedule=instance)

    @extend_schema(request=None, responses={202: ReportSerializer})
    @action(detail=True, methods=["post"], url_path="send-now")
    def send_now(self, request: Request, pk: str | None = None) -> Response:
        """Build and email the most recent complete period now (in the background)."""
        report = services.report_send_now(schedule=self.get_object())
        return Response(ReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=PreviewSerializer)
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """What "send now" would send: the stats and the email's HTML; nothing is stored."""
        return Response(services.report_preview(schedule=self.get_object()))


class ReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Reports that were built: their numbers, and their PDF, CSV and HTML."""

    resource = "reports"
    queryset = Report.objects.all()
    serializer_class = ReportSerializer
    ordering = ("-period_start", "-id")

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        query = ReportFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.report_list(org=self.org, schedule_id=query.validated_data.get("schedule"))

    def get_serializer_class(self) -> Any:
        return ReportDetailSerializer if self.action == "retrieve" else ReportSerializer

    @extend_schema(
        parameters=[DownloadQuerySerializer],
        responses={
            (200, "application/pdf"): bytes,
            (200, "text/csv"): str,
            (200, "text/html"): str,
            409: OpenApiResponse(description="The report is still being built."),
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The report as `?file=pdf` (default), `csv` or `html`."""
        query = DownloadQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        report = self.get_object()
        if report.status == Report.Status.CLAIMED:
            # A problem+json 409 here; the dashboard shares report_file_response's plain one.
            raise ReportNotReady()
        return report_file_response(report, query.validated_data["file"])


class ReportNotReady(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The report is still being built; try again in a minute."
    default_code = "report_not_ready"


def report_file_response(report: Report, kind: str) -> HttpResponse:
    """A report's stored file as a download (shared by the API and the dashboard)."""
    if report.status in (Report.Status.CLAIMED,):
        return HttpResponse("The report is still being built.", status=409)
    stem = f"{report.file_stem}-{report.pk}"
    content, mimetype = services.report_export(report=report, kind=kind)
    response = HttpResponse(content, content_type=mimetype)
    response["Content-Disposition"] = f'attachment; filename="{stem}.{kind}"'
    return response


class WebhookEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """URLs that receive signed events. The secret is in the create response only."""

    resource = "reports"
    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookSerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.order_by("-created_at", "-id")

    @extend_schema(request=WebhookInSerializer, responses={201: WebhookCreatedSerializer})
    def create(self, request: Request) -> Response:
        payload = WebhookInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_create(
            org=self.org, created_by=_user(self), **payload.validated_data
        )
        body = {**WebhookSerializer(endpoint).data, "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=WebhookInSerializer, responses=WebhookSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        payload = WebhookInSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        services.webhook_update(endpoint=endpoint, changes=dict(payload.validated_data))
        return Response(WebhookSerializer(endpoint).data)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        services.webhook_delete(endpoint=instance)

    @extend_schema(request=None, responses=WebhookCreatedSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """Replace the signing secret; the new one is in this response only."""
        endpoint = self.get_object()
        secret = services.webhook_rotate_secret(endpoint=endpoint)
        return Response({**WebhookSerializer(endpoint).data, "secret": secret})


class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The delivery log: every event sent to an endpoint and each attempt's outcome."""

    resource = "reports"
    queryset = WebhookDelivery.objects.all()
    serializer_class = DeliverySerializer

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        query = DeliveryFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.delivery_list(
            org=self.org, endpoint_id=query.validated_data.get("endpoint")
        )


class AlertEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Alerts that fired: negative-share and volume spikes, bursts of flagged items."""

    resource = "reports"
    queryset = AlertEvent.objects.all()
    serializer_class = AlertEventSerializer
