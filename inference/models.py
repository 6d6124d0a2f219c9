"""The model registry: which model versions exist, which are active, and orgs' own label sets.

Base models (sentiment, language, anomaly) ship as files in ONNX_MODEL_DIR and have no org.
An org's category models are trained in the worker and stored here as bytes, so every web
process on every machine can load the same version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from tenants.models import Organization, OrgOwnedModel


class Task(models.TextChoices):
    SENTIMENT = "sentiment", "Sentiment"
    LANGUAGE = "language", "Language"
    ANOMALY = "anomaly", "Anomaly"
    CATEGORY = "category", "Category"


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class LabelSet(OrgOwnedModel):
    """An org's own categories, e.g. Teaching, Facilities, Grading."""

    name = models.CharField(max_length=100)
    labels = ArrayField(models.CharField(max_length=60), size=50)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["organization", "name"], name="labelset_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class CategoryExample(OrgOwnedModel):
    """A labelled text an org's category classifier learns from."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Labelled by hand"
        CORRECTION = "correction", "Correction of a prediction"
        IMPORT = "import", "Imported"

    label_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="examples")
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    label = models.CharField(max_length=60)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    feedback_id = models.BigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    if TYPE_CHECKING:
        label_set_id: int

    class Meta:
        constraints: ClassVar = [
            # Relabelling the same text replaces its label instead of adding a duplicate.
            models.UniqueConstraint(
                fields=["organization", "label_set", "text_hash"], name="example_text_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.text[:40]}"


class ModelVersion(models.Model):
    """One trained, parity-checked model. At most one is active per (task, org)."""

    task = models.CharField(max_length=16, choices=Task.choices)
    version = models.CharField(max_length=64)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    label_set = models.ForeignKey(
        LabelSet, null=True, blank=True, on_delete=models.CASCADE, related_name="versions"
    )
    # Base models: a path relative to ONNX_MODEL_DIR. Org models: the ONNX bytes themselves.
    file = models.CharField(max_length=255, blank=True)
    artifact = models.BinaryField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    labels = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE
    )
    created_at = models.DateTimeField(default=now)
    activated_at = models.DateTimeField(null=True, blank=True)

    if TYPE_CHECKING:
        organization_id: int | None

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task", "organization"],
                condition=Q(status="active"),
                nulls_distinct=False,
                name="one_active_version_per_task_org",
            ),
            models.UniqueConstraint(
                fields=["task", "organization", "version"],
                nulls_distinct=False,
                name="modelversion_unique",
            ),
        ]
        indexes: ClassVar = [
            models.Index(
                fields=["organization", "task", "-created_at"], name="modelversion_org_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.version} ({self.status})"


class TrainingRun(OrgOwnedModel):
    """A request to train an org's category model, followed by the worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    label_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    if TYPE_CHECKING:
        label_set_id: int

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"], name="trainingrun_org_idx")
        ]

    def __str__(self) -> str:
        return f"Training {self.label_set_id} ({self.status})"
