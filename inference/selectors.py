"""Reads of the model registry and org label sets."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from inference.models import (
    CategoryExample,
    LabelSet,
    ModelVersion,
    Task,
    TrainingRun,
    VersionStatus,
)
from tenants.models import Organization


def active_version(*, task: str, org: Organization | None = None) -> ModelVersion | None:
    """The active version of `task` for `org` (or the base model when `org` is None)."""
    return (
        ModelVersion.objects.filter(task=task, organization=org, status=VersionStatus.ACTIVE)
        .defer("artifact")
        .first()
    )


def active_category_version_id(*, org_id: int) -> int | None:
    """Cheap check used by running processes to notice activations within seconds."""
    return (
        ModelVersion.objects.filter(
            task=Task.CATEGORY, organization_id=org_id, status=VersionStatus.ACTIVE
        )
        .values_list("id", flat=True)
        .first()
    )


def model_version_list(*, org: Organization, task: str | None = None) -> QuerySet[ModelVersion]:
    """The org's own versions, newest first (artifact bytes not loaded)."""
    qs = ModelVersion.objects.filter(organization=org).defer("artifact")
    if task:
        qs = qs.filter(task=task)
    return qs.order_by("-created_at", "-id")


def model_version_get(*, org: Organization, version_id: int) -> ModelVersion | None:
    return model_version_list(org=org).filter(pk=version_id).first()


def base_version_list() -> QuerySet[ModelVersion]:
    return (
        ModelVersion.objects.filter(organization__isnull=True)
        .defer("artifact")
        .order_by("task", "-created_at")
    )


def label_set_list(*, org: Organization) -> QuerySet[LabelSet]:
    return LabelSet.objects.for_org(org).annotate(example_count=Count("examples")).order_by("name")


def label_set_get(*, org: Organization, label_set_id: int) -> LabelSet | None:
    return LabelSet.objects.for_org(org).filter(pk=label_set_id).first()


def example_counts(*, org: Organization, label_set: LabelSet) -> dict[str, int]:
    """Examples per label, including labels that have none yet."""
    counts = dict.fromkeys(label_set.labels, 0)
    rows = (
        CategoryExample.objects.for_org(org)
        .filter(label_set=label_set)
        .values_list("label")
        .annotate(n=Count("id"))
    )
    for label, n in rows:
        counts[label] = n
    return counts


def example_list(*, org: Organization, label_set: LabelSet) -> QuerySet[CategoryExample]:
    return CategoryExample.objects.for_org(org).filter(label_set=label_set).order_by("-created_at")


def training_run_list(*, org: Organization) -> QuerySet[TrainingRun]:
    return (
        TrainingRun.objects.for_org(org)
        .select_related("label_set", "model_version")
        .order_by("-created_at")
    )


def label_set_for_corrections(*, org: Organization) -> LabelSet | None:
    """The label set a category correction must use: the active model's, else the newest.

    feedback.services.feedback_review enforces it and the dashboard offers its labels.
    """
    version = active_version(task=Task.CATEGORY, org=org)
    if version is not None and version.label_set_id is not None:
        return label_set_get(org=org, label_set_id=version.label_set_id)
    return LabelSet.objects.for_org(org).order_by("-created_at").first()


def training_run_get(*, org: Organization, run_id: int) -> TrainingRun | None:
    """One of the org's training runs, or None when the org has no such id."""
    return training_run_list(org=org).filter(pk=run_id).first()
