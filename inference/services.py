"""Writes to the model registry: label sets, examples, training runs, activation, rollback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from inference.models import (
    CategoryExample,
    LabelSet,
    ModelVersion,
    Task,
    TrainingRun,
    VersionStatus,
)
from inference.text import normalize
from tenants.audit import audit_record
from tenants.models import AuditAction, Organization, User

logger = logging.getLogger(__name__)

MIN_EXAMPLES_PER_LABEL = 10
TRAINING_SEED = 20261122


def _text_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def label_set_create(
    *, org: Organization, name: str, labels: list[str], created_by: User | None
) -> LabelSet:
    """Define an org's categories: 2 to 50 distinct, non-empty labels of ≤ 60 characters."""
    name = name.strip()
    cleaned = [label.strip() for label in labels if label.strip()]
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the label set a name."
    if len(cleaned) < 2 or len(cleaned) > 50:
        errors["labels"] = "Give between 2 and 50 labels."
    elif len({label.casefold() for label in cleaned}) != len(cleaned):
        errors["labels"] = "Labels must be distinct."
    elif any(len(label) > 60 for label in cleaned):
        errors["labels"] = "Labels are at most 60 characters."
    if not errors and LabelSet.objects.for_org(org).filter(name=name).exists():
        errors["name"] = "A label set with this name exists."
    if errors:
        raise ValidationError(errors)
    return LabelSet.objects.create(
        organization=org, name=name, labels=cleaned, created_by=created_by
    )


def example_add(
    *,
    org: Organization,
    label_set: LabelSet,
    text: str,
    label: str,
    created_by: User | None,
    source: str = CategoryExample.Source.MANUAL,
    feedback_id: int | None = None,
) -> CategoryExample:
    """Label a text; labelling the same text again replaces its label."""
    if label_set.organization_id != org.pk:
        raise ValidationError({"label_set": "No such label set."})
    if label not in label_set.labels:
        raise ValidationError({"label": f"Choose one of {label_set.labels}."})
    if not normalize(text):
        raise ValidationError({"text": "The text is empty."})
    example, _ = CategoryExample.objects.update_or_create(
        organization=org,
        label_set=label_set,
        text_hash=_text_hash(text),
        defaults={
            "text": text.strip()[:10_000],
            "label": label,
            "source": source,
            "created_by": created_by,
            "feedback_id": feedback_id,
        },
    )
    return example


def _missing_examples(org: Organization, label_set: LabelSet) -> dict[str, int]:
    from inference.selectors import example_counts

    counts = example_counts(org=org, label_set=label_set)
    return {label: n for label, n in counts.items() if n < MIN_EXAMPLES_PER_LABEL}


@transaction.atomic
def training_request(
    *, org: Organization, label_set: LabelSet, requested_by: User | None
) -> TrainingRun:
    """Queue training of the org's classifier; refuse at once if any label lacks examples."""
    missing = _missing_examples(org, label_set)
    if missing:
        listed = ", ".join(f"{label} ({n})" for label, n in sorted(missing.items()))
        raise ValidationError(
            {
                "examples": f"Each label needs at least {MIN_EXAMPLES_PER_LABEL} examples; "
                f"these need more: {listed}."
            }
        )
    run = TrainingRun.objects.create(
        organization=org, label_set=label_set, requested_by=requested_by
    )
    from inference.tasks import train_category_model

    # Deferred in this transaction: the job exists if and only if the run does.
    train_category_model.defer(run_id=run.pk, org_id=org.pk)
    return run


def training_run_execute(*, org: Organization, run_id: int) -> TrainingRun:
    """Train, cross-validate and register a candidate version for a queued run (worker side)."""
    from inference.training.classifier import InsufficientExamples, train_text_classifier

    run = TrainingRun.objects.for_org(org).select_related("label_set").get(pk=run_id)
    if run.status == TrainingRun.Status.SUCCEEDED:
        return run  # a retried job after a crash: the work is done
    run.status = TrainingRun.Status.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at"])
    examples = list(
        CategoryExample.objects.for_org(org)
        .filter(label_set=run.label_set, label__in=run.label_set.labels)
        .order_by("text_hash")
        .values_list("text", "label")
    )
    try:
        trained = train_text_classifier(
            [text for text, _ in examples],
            [label for _, label in examples],
            seed=TRAINING_SEED,
            min_examples=MIN_EXAMPLES_PER_LABEL,
        )
    except InsufficientExamples as exc:
        return _fail(run, str(exc))
    except Exception as exc:
        logger.exception("training run %s failed", run.pk)
        return _fail(run, f"Training failed: {exc}")
    fingerprint = hashlib.sha256(json.dumps(examples, ensure_ascii=False).encode()).hexdigest()
    with transaction.atomic():
        version = ModelVersion.objects.create(
            task=Task.CATEGORY,
            organization=org,
            label_set=run.label_set,
            version=f"cat-{run.label_set_id}-{run.pk}-{trained.sha256[:8]}",
            artifact=trained.onnx_bytes,
            sha256=trained.sha256,
            labels=list(trained.labels),
            metrics={**trained.metrics, "examples": len(examples)},
            data_fingerprint=fingerprint,
        )
        run.status = TrainingRun.Status.SUCCEEDED
        run.model_version = version
        run.finished_at = timezone.now()
        run.error = ""
        run.save(update_fields=["status", "model_version", "finished_at", "error"])
        audit_record(
            org=org,
            action=AuditAction.MODEL_TRAINED,
            target=version,
            target_label=version.version,
            metadata={"label_set": run.label_set.name, "run_id": run.pk},
            user=run.requested_by,
        )
    return run


def _fail(run: TrainingRun, message: str) -> TrainingRun:
    run.status = TrainingRun.Status.FAILED
    run.error = message
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    return run


@transaction.atomic
def model_version_activate(*, org: Organization | None, version: ModelVersion) -> ModelVersion:
    """Make `version` the active one for its task; the previous active one is retired.

    Running processes notice within seconds (see inference.classify), no restart needed.
    """
    previous = _activate(org=org, version=version)
    if org is not None:
        audit_record(
            org=org,
            action=AuditAction.MODEL_ACTIVATED,
            target=version,
            target_label=version.version,
            metadata={"task": version.task, "previous": previous},
        )
        _recategorize_later(org, version)
    return version


def _recategorize_later(org: Organization, version: ModelVersion) -> None:
    """Queue the org's stored feedback for the categories of ``version``, just activated (in
    the caller's transaction: the job exists if and only if the activation does)."""
    if version.task != Task.CATEGORY or version.activated_at is None:
        return
    from feedback.tasks import recategorize
    from inference.classify import CATEGORY_CHECK_SECONDS

    settle_until = version.activated_at + dt.timedelta(seconds=CATEGORY_CHECK_SECONDS + 1)
    # One run per org at a time; a run for a version that is no longer active stops at once.
    recategorize.configure(lock=f"recategorize-{org.pk}").defer(
        org_id=org.pk, version_id=version.pk, settle_until=settle_until.isoformat()
    )


def _activate(*, org: Organization | None, version: ModelVersion) -> list[str]:
    """Activate `version`, retiring the active one; returns the retired versions' names."""
    if version.organization_id != (org.pk if org else None):
        raise ValidationError({"version": "No such model version."})
    current = (
        ModelVersion.objects.select_for_update()
        .filter(task=version.task, organization=org, status=VersionStatus.ACTIVE)
        .exclude(pk=version.pk)
    )
    retired = list(current.values_list("version", flat=True))
    current.update(status=VersionStatus.RETIRED)
    version.status = VersionStatus.ACTIVE
    version.activated_at = timezone.now()
    version.save(update_fields=["status", "activated_at"])
    return retired


@transaction.atomic
def model_version_rollback(*, org: Organization | None, task: str) -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    current = (
        ModelVersion.objects.select_for_update()
        .filter(task=task, organization=org, status=VersionStatus.ACTIVE)
        .first()
    )
    previous = (
        ModelVersion.objects.filter(
            task=task,
            organization=org,
            status=VersionStatus.RETIRED,
            activated_at__isnull=False,
        )
        .order_by("-activated_at")
        .first()
    )
    if previous is None:
        raise ValidationError({"version": "There is no earlier version to roll back to."})
    if current is not None:
        current.status = VersionStatus.RETIRED
        current.save(update_fields=["status"])
    _activate(org=org, version=previous)
    if org is not None:
        audit_record(
            org=org,
            action=AuditAction.MODEL_ROLLED_BACK,
            target=previous,
            target_label=previous.version,
            metadata={"task": task, "from": current.version if current is not None else None},
        )
        _recategorize_later(org, previous)
    return previous


@transaction.atomic
def model_version_deactivate(*, org: Organization, task: str) -> None:
    """Stop using the org's own model for `task` (predictions fall back to none)."""
    active = ModelVersion.objects.filter(task=task, organization=org, status=VersionStatus.ACTIVE)
    retired = list(active.values_list("version", flat=True))
    if active.update(status=VersionStatus.RETIRED):
        audit_record(
            org=org,
            action=AuditAction.MODEL_DEACTIVATED,
            metadata={"task": task, "retired": retired},
        )


def base_models_sync(*, model_dir: Path | None = None) -> list[ModelVersion]:
    """Register the shipped manifest's models and activate any task that has no active one."""
    model_dir = model_dir or Path(settings.ONNX_MODEL_DIR)
    manifest: dict[str, Any] = json.loads((model_dir / "manifest.json").read_text())
    registered: list[ModelVersion] = []
    for task, entry in sorted(manifest.get("models", {}).items()):
        if task not in Task.values:
            continue
        metrics = dict(entry.get("metrics", {}))
        version, created = ModelVersion.objects.get_or_create(
            task=task,
            organization=None,
            version=str(entry["version"]),
            defaults={
                "file": str(entry["file"]),
                "sha256": str(entry["sha256"]),
                "labels": list(entry.get("labels", [])),
                "metrics": metrics,
                "data_fingerprint": str(manifest.get("data_fingerprint", ""))[:64],
            },
        )
        if not created and version.metrics != metrics:
            # Same file (the version names its sha256), measured again or more fully by a later
            # build: the manifest's figures are the current ones.
            version.metrics = metrics
            version.save(update_fields=["metrics"])
        if not ModelVersion.objects.filter(
            task=task, organization=None, status=VersionStatus.ACTIVE
        ).exists():
            model_version_activate(org=None, version=version)
        registered.append(version)
    return registered
