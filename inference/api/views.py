"""Org label sets, examples, training runs and model versions (activate, roll back, switch off)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from inference import selectors, services
from inference.api.serializers import (
    ExampleSerializer,
    ExamplesInSerializer,
    LabelSetInSerializer,
    LabelSetSerializer,
    ModelTaskInSerializer,
    ModelVersionSerializer,
    TrainingRunSerializer,
)
from inference.models import LabelSet, ModelVersion, Task, TrainingRun
from tenants.api.base import OrgScopedViewSet


def _user(view: OrgScopedViewSet) -> Any:
    return view.membership.user if view.membership is not None else None


class LabelSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The org's own categories, their examples, and training."""

    resource = "categories"
    queryset = LabelSet.objects.all()
    serializer_class = LabelSetSerializer
    ordering = ("name", "id")
    action_scopes = {"train": "models:write"}

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if hasattr(self, "org"):
            context["counts"] = {
                ls.pk: selectors.example_counts(org=self.org, label_set=ls)
                for ls in LabelSet.objects.for_org(self.org)
            }
        return context

    @extend_schema(request=LabelSetInSerializer, responses={201: LabelSetSerializer})
    def create(self, request: Request) -> Response:
        payload = LabelSetInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        label_set = services.label_set_create(
            org=self.org, created_by=_user(self), **payload.validated_data
        )
        return Response(
            LabelSetSerializer(label_set, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        methods=["post"],
        request=ExamplesInSerializer,
        responses={201: ExampleSerializer(many=True)},
    )
    @extend_schema(methods=["get"], responses=ExampleSerializer(many=True))
    # At most 1,000 examples in one plain list: not paginated.
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def examples(self, request: Request, pk: str | None = None) -> Response:
        """List examples, or label texts (labelling a text again replaces its label)."""
        label_set = self.get_object()
        if request.method == "GET":
            rows = selectors.example_list(org=self.org, label_set=label_set)[:1000]
            return Response(ExampleSerializer(rows, many=True).data)
        payload = ExamplesInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        errors = {
            str(i): {"label": [f"Choose one of {label_set.labels}."]}
            for i, ex in enumerate(payload.validated_data["examples"])
            if ex["label"] not in label_set.labels
        }
        if errors:
            raise exceptions.ValidationError({"examples": errors})
        created = [
            services.example_add(
                org=self.org, label_set=label_set, created_by=_user(self), **example
            )
            for example in payload.validated_data["examples"]
        ]
        return Response(ExampleSerializer(created, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: TrainingRunSerializer})
    @action(detail=True, methods=["post"])
    def train(self, request: Request, pk: str | None = None) -> Response:
        """Queue training; refused at once (400) naming the labels that need more examples."""
        run = services.training_request(
            org=self.org, label_set=self.get_object(), requested_by=_user(self)
        )
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    resource = "models"
    queryset = TrainingRun.objects.all()
    serializer_class = TrainingRunSerializer


class ModelVersionViewSet(OrgScopedViewSet):
    """The org's own model versions; activate one or roll back to the previous one."""

    resource = "models"
    serializer_class = ModelVersionSerializer

    # ModelVersion rows of base models have no org; this viewset serves only the org's own.
    queryset = ModelVersion.objects.none()

    def scope_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset

    @extend_schema(
        responses=inline_serializer(
            "ModelVersionList",
            {
                "base": ModelVersionSerializer(many=True),
                "org": ModelVersionSerializer(many=True),
            },
        )
    )
    def list(self, request: Request) -> Response:
        own = selectors.model_version_list(org=self.org)
        base = selectors.base_version_list().filter(status="active")
        return Response(
            {
                "base": ModelVersionSerializer(base, many=True).data,
                "org": ModelVersionSerializer(own, many=True).data,
            }
        )

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ModelVersionSerializer(self._version(pk)).data)

    @extend_schema(
        request=None,
        responses=ModelVersionSerializer,
        description="Make this version the org's category model: new feedback gets its "
        "categories within seconds, and the org's stored feedback is categorised again by a "
        "background job (reviewers' corrections are kept).",
    )
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        version = services.model_version_activate(org=self.org, version=self._version(pk))
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(
        request=ModelTaskInSerializer,
        responses=ModelVersionSerializer,
        description="Re-activate the version that was active before the current one; stored "
        "feedback is categorised with it again in the background.",
    )
    @action(detail=False, methods=["post"])
    def rollback(self, request: Request) -> Response:
        payload = ModelTaskInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = services.model_version_rollback(org=self.org, task=Task.CATEGORY)
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(
        request=ModelTaskInSerializer,
        responses={204: None},
        description="Stop using the org's category model: new feedback gets no category; "
        "stored feedback keeps its categories. A roll back switches the same version on again.",
    )
    @action(detail=False, methods=["post"])
    def deactivate(self, request: Request) -> Response:
        payload = ModelTaskInSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.model_version_deactivate(org=self.org, task=Task.CATEGORY)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _version(self, pk: str | None) -> ModelVersion:
        try:
            version_id = int(pk or "")
        except ValueError:
            raise exceptions.NotFound("No such model version.") from None
        version = selectors.model_version_get(org=self.org, version_id=version_id)
        if version is None:
            raise exceptions.NotFound("No such model version.")
        return version
