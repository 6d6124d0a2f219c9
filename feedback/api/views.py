"""The feedback API: thin views over feedback.services / feedback.selectors."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from feedback import imports, selectors, services
from feedback.api import items
from feedback.api.serializers import (
    BatchInSerializer,
    BatchOutSerializer,
    ClassifyInSerializer,
    ClassifyOutSerializer,
    FeedbackFilterSerializer,
    FeedbackInSerializer,
    FeedbackReviewSerializer,
    FeedbackSerializer,
    ImportJobSerializer,
    StatsOutSerializer,
    StatsQuerySerializer,
    UsageOutSerializer,
    prediction_payload,
)
from feedback.models import Feedback, ImportJob
from feedback.services import FeedbackInput, QuotaExceeded
from inference.classify import classify
from tenants.api.base import OrgScopedViewSet


class QuotaExhausted(exceptions.Throttled):
    default_code = "quota_exceeded"


def _quota_error(exc: QuotaExceeded) -> QuotaExhausted:
    wait = max(1, int((exc.resets_at - timezone.now()).total_seconds()))
    return QuotaExhausted(
        wait=wait,
        detail=f"{exc} The quota resets on {exc.resets_at:%Y-%m-%d}; upgrade the plan for more.",
    )


def _principal(view: OrgScopedViewSet) -> Any:
    return view.membership.user if view.membership is not None else None


class FeedbackViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """Feedback records of the organization."""

    resource = "feedback"
    queryset = Feedback.objects.all()
    serializer_class = FeedbackSerializer
    ordering = ("-received_at", "-id")

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset.select_related("reviewed_by")
        filters = FeedbackFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.feedback_list(
            org=self.org, filters=selectors.FeedbackFilters(**filters.validated_data)
        ).select_related("reviewed_by")

    @extend_schema(parameters=[FeedbackFilterSerializer])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=FeedbackInSerializer,
        responses={201: FeedbackSerializer, 200: FeedbackSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER, description="Makes retries safe."
            )
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = items.accept(request.data)
        if item is None:  # unusual or invalid: the serializer decides, with its messages
            payload = FeedbackInSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            item = payload.to_input()
        try:
            result = services.feedback_ingest(org=self.org, items=[item])
        except QuotaExceeded as exc:
            raise _quota_error(exc) from exc
        if result.errors:
            raise exceptions.ValidationError(result.errors[0])
        if 0 in result.existing:
            return Response(FeedbackSerializer(result.existing[0]).data, status=status.HTTP_200_OK)
        return Response(FeedbackSerializer(result.created[0]).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BatchInSerializer, responses={200: BatchOutSerializer})
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> Response:
        """Store up to 1,000 items; invalid ones are reported by index, valid ones stored."""
        payload = BatchInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        inputs: list[FeedbackInput] = []
        positions: list[int] = []
        item_errors: dict[int, Any] = {}
        for index, raw in enumerate(payload.validated_data["items"]):
            accepted = items.accept(raw)
            if accepted is None:
                item = FeedbackInSerializer(data=raw)
                if not item.is_valid():
                    item_errors[index] = item.errors
                    continue
                accepted = item.to_input()
            inputs.append(accepted)
            positions.append(index)
        try:
            result = services.feedback_ingest(org=self.org, items=inputs)
        except QuotaExceeded as exc:
            raise _quota_error(exc) from exc
        results: list[dict[str, Any]] = [
            {"index": index, "status": "error", "errors": errors}
            for index, errors in item_errors.items()
        ]
        for local, index in enumerate(positions):
            if local in result.created:
                results.append(
                    {"index": index, "status": "created", "id": result.created[local].pk}
                )
            elif local in result.existing:
                results.append(
                    {"index": index, "status": "existing", "id": result.existing[local].pk}
                )
            else:
                results.append({"index": index, "status": "error", "errors": result.errors[local]})
        results.sort(key=lambda r: r["index"])
        body = {
            "created": sum(r["status"] == "created" for r in results),
            "existing": sum(r["status"] == "existing" for r in results),
            "failed": sum(r["status"] == "error" for r in results),
            "results": results,
        }
        return Response(body, status=status.HTTP_200_OK)

    @extend_schema(request=FeedbackReviewSerializer, responses=FeedbackSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Review: correct sentiment or category, or set the status. Nothing else changes."""
        feedback = self.get_object()
        payload = FeedbackReviewSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.feedback_review(
            org=self.org,
            feedback=feedback,
            actor=_principal(self),
            changes=dict(payload.validated_data),
        )
        return Response(FeedbackSerializer(feedback).data)

    def perform_destroy(self, instance: Feedback) -> None:
        services.feedback_delete(feedback=instance)


class ClassifyViewSet(OrgScopedViewSet):
    """Classify texts without storing them (does not count against the item quota)."""

    resource = "feedback"
    # Computing a prediction changes nothing, so a read-only key may do it.
    action_scopes = {"create": "feedback:read"}
    queryset = Feedback.objects.none()

    @extend_schema(request=ClassifyInSerializer, responses={200: ClassifyOutSerializer})
    def create(self, request: Request) -> Response:
        payload = ClassifyInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        texts = [t.strip() for t in payload.validated_data["texts"]]
        bad = {
            str(i): ["Text is empty."]
            if not t
            else [f"Text is longer than {services.MAX_TEXT_CHARS}."]
            for i, t in enumerate(texts)
            if not t or len(t) > services.MAX_TEXT_CHARS or "\x00" in t
        }
        if bad:
            raise exceptions.ValidationError({"texts": bad})
        predictions = classify(org_id=self.org.pk, texts=texts)
        return Response({"results": [prediction_payload(p) for p in predictions]})


class StatsViewSet(OrgScopedViewSet):
    """Counts over a period, by sentiment, language, category, source, and over time."""

    resource = "feedback"
    queryset = Feedback.objects.none()

    @extend_schema(
        parameters=[StatsQuerySerializer],
        responses=StatsOutSerializer,
    )
    def list(self, request: Request) -> Response:
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        until = query.validated_data.get("until") or timezone.now()
        since = query.validated_data.get("since") or until - dt.timedelta(days=30)
        if since >= until:
            raise exceptions.ValidationError({"since": ["Must be before `until`."]})
        if until - since > dt.timedelta(days=800):
            raise exceptions.ValidationError({"since": ["The period is at most 800 days."]})
        return Response(
            selectors.feedback_stats(
                org=self.org, since=since, until=until, interval=query.validated_data["interval"]
            )
        )


class UsageViewSet(OrgScopedViewSet):
    """This month's ingested items against the plan."""

    resource = "feedback"
    queryset = Feedback.objects.none()
    # Checking usage should work even for a client that has hit its rate limit.
    throttle_classes = []

    @extend_schema(responses=UsageOutSerializer)
    def list(self, request: Request) -> Response:
        return Response(selectors.usage_get(org=self.org))


class ImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """CSV imports: upload (202, runs in the background), progress, error report."""

    resource = "imports"
    queryset = ImportJob.objects.all()
    serializer_class = ImportJobSerializer
    parser_classes: Any = [MultiPartParser, FormParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "ImportUpload",
                {
                    "file": serializers.FileField(),
                    "mapping": serializers.CharField(required=False),
                    "source": serializers.CharField(required=False),
                },
            )
        },
        responses={202: ImportJobSerializer},
    )
    def create(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise exceptions.ValidationError({"file": ["Attach a CSV file as `file`."]})
        if upload.size is not None and upload.size > imports.MAX_IMPORT_BYTES:
            raise exceptions.ValidationError(
                {"file": [f"The file is larger than {imports.MAX_IMPORT_BYTES} bytes."]}
            )
        mapping = None
        raw_mapping = request.POST.get("mapping")
        if raw_mapping:
            try:
                mapping = json.loads(raw_mapping)
            except json.JSONDecodeError as exc:
                raise exceptions.ValidationError({"mapping": ["Not valid JSON."]}) from exc
            if not isinstance(mapping, dict):
                raise exceptions.ValidationError({"mapping": ["Give a JSON object."]})
        job = imports.import_create(
            org=self.org,
            filename=upload.name or "upload.csv",
            content=upload.read(),
            mapping=mapping,
            created_by=_principal(self),
            default_source=str(request.POST.get("source") or "csv"),
        )
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=True, methods=["get"])
    def errors(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The row error report: row number, field and reason, as CSV."""
        job = self.get_object()
        response = HttpResponse(imports.import_errors_csv(job=job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response
