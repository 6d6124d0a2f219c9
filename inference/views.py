"""The Models page: base models, the org's own categories, training, activation, rollback."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from feedback import selectors as feedback_selectors
from feedback.models import Language
from inference import selectors, services
from inference.forms import ExampleForm, LabelSetForm
from inference.models import LabelSet, ModelVersion, Task, TrainingRun, VersionStatus
from tenants.decorators import OrgRequest, org_view

RECENT_RUNS = 10
SHOWN_EXAMPLES = 50
RECENT_FEEDBACK = 10


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Macro-F1, accuracy and n, whether at the top level (org models) or under "overall"."""
    overall = metrics.get("overall", metrics)
    return {key: overall.get(key) for key in ("macro_f1", "accuracy", "n")}


def _screening(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The anomaly screen on the evaluation set (``inference.training.anomaly.screening_metrics``):
    ordinary texts flagged, over the languages measured, and planted anomalies caught."""
    screening = metrics.get("screening")
    if not screening:
        return None
    normal = screening["eval_normal"]
    planted = screening["eval_anomalous"]
    return {
        "languages": [Language(code).label if code in Language.values else code for code in normal],
        "normal_n": sum(m["n"] for m in normal.values()),
        "normal_flagged": sum(m["flagged"] for m in normal.values()),
        "planted_n": planted["n"],
        "caught": planted["caught"],
    }


def _base_row(task: str, version: str, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": task,
        "version": version,
        "metrics": _headline(metrics),
        "screening": _screening(metrics),
    }


def _base_models() -> list[dict[str, Any]]:
    """The active shipped models: from the registry, or the manifest before it was synced."""
    rows = [
        _base_row(v.get_task_display(), v.version, v.metrics)
        for v in selectors.base_version_list().filter(status=VersionStatus.ACTIVE)
    ]
    if rows:
        return rows
    from inference.classify import engine
    from inference.runtime import ModelError

    try:
        manifest = engine().manifest
    except ModelError:
        return []
    return [
        _base_row(
            Task(task).label if task in Task.values else task,
            entry.get("version", ""),
            entry.get("metrics", {}),
        )
        for task, entry in sorted(manifest.get("models", {}).items())
    ]


def _compare(version: ModelVersion, active: ModelVersion | None) -> dict[str, Any]:
    mine = _headline(version.metrics)
    theirs = _headline(active.metrics) if active is not None and active.pk != version.pk else {}
    delta = None
    if mine.get("macro_f1") is not None and theirs.get("macro_f1") is not None:
        delta = round(float(mine["macro_f1"]) - float(theirs["macro_f1"]), 4)
    return {"version": version, "metrics": mine, "active_metrics": theirs, "delta_f1": delta}


@org_view("models")
def models_page(request: OrgRequest) -> HttpResponse:
    org = request.org
    active = selectors.active_version(task=Task.CATEGORY, org=org)
    versions = list(selectors.model_version_list(org=org, task=Task.CATEGORY))
    can_roll_back = any(
        v.status == VersionStatus.RETIRED and v.activated_at is not None for v in versions
    )
    return render(
        request,
        "inference/models.html",
        {
            "base_models": _base_models(),
            "active": active,
            "versions": [_compare(v, active) for v in versions],
            "can_roll_back": can_roll_back,
            "label_sets": selectors.label_set_list(org=org),
            "runs": selectors.training_run_list(org=org)[:RECENT_RUNS],
            "form": LabelSetForm(),
            "needed": services.MIN_EXAMPLES_PER_LABEL,
        },
    )


@require_POST
@org_view("categories")
def label_set_create(request: OrgRequest) -> HttpResponse:
    form = LabelSetForm(request.POST)
    if form.is_valid():
        try:
            label_set = services.label_set_create(
                org=request.org, created_by=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Label set “{label_set.name}” created. Now label examples.")
            return redirect("label-set", org_slug=request.org.slug, label_set_id=label_set.pk)
    else:
        messages.error(request, "Give the label set a name and its categories.")
    return redirect("models", org_slug=request.org.slug)


def _label_set_or_404(request: OrgRequest, label_set_id: int) -> LabelSet:
    label_set = selectors.label_set_get(org=request.org, label_set_id=label_set_id)
    if label_set is None:
        raise Http404("No such label set.")
    return label_set


@org_view("categories")
def label_set_detail(request: OrgRequest, label_set_id: int) -> HttpResponse:
    """Examples per label, a form to label more, and the training button."""
    org = request.org
    label_set = _label_set_or_404(request, label_set_id)
    form = ExampleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        text = form.cleaned_data["text"]
        feedback_id = form.cleaned_data.get("feedback_id")
        if feedback_id:
            # Labelling one of the org's feedback items: another org's id is "not found".
            feedback = feedback_selectors.feedback_get(org=org, feedback_id=feedback_id)
            if feedback is None:
                raise Http404("No such feedback.")
            text = feedback.text
        try:
            services.example_add(
                org=org,
                label_set=label_set,
                text=text,
                label=form.cleaned_data["label"],
                created_by=request.user,
                feedback_id=feedback_id,
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Labelled as “{form.cleaned_data['label']}”.")
            return redirect("label-set", org_slug=org.slug, label_set_id=label_set.pk)
    counts = selectors.example_counts(org=org, label_set=label_set)
    runs = selectors.training_run_list(org=org).filter(label_set=label_set)[:RECENT_RUNS]
    return render(
        request,
        "inference/label_set.html",
        {
            "label_set": label_set,
            "counts": counts,
            "needed": services.MIN_EXAMPLES_PER_LABEL,
            "ready": all(n >= services.MIN_EXAMPLES_PER_LABEL for n in counts.values()),
            "examples": selectors.example_list(org=org, label_set=label_set)[:SHOWN_EXAMPLES],
            "recent_feedback": feedback_selectors.feedback_list(org=org)[:RECENT_FEEDBACK],
            "runs": runs,
            "form": form,
        },
    )


@require_POST
@org_view("models")
def label_set_train(request: OrgRequest, label_set_id: int) -> HttpResponse:
    label_set = _label_set_or_404(request, label_set_id)
    try:
        services.training_request(org=request.org, label_set=label_set, requested_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Training queued. This page shows its progress.")
    return redirect("label-set", org_slug=request.org.slug, label_set_id=label_set.pk)


def _run_progress(run: TrainingRun) -> dict[str, Any]:
    done = run.status in (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED)
    # Training reports no fraction; a finished run is 100%, a queued or running one unknown.
    return {
        "status": run.status,
        "done": done,
        "percent": 100 if done else None,
        "text": f"Training {run.get_status_display().lower()}"
        + (f": {run.error}" if run.error else ""),
    }


@require_GET
@org_view("models")
def training_run_progress(request: OrgRequest, run_id: int) -> JsonResponse:
    run = selectors.training_run_get(org=request.org, run_id=run_id)
    if run is None:
        raise Http404("No such training run.")
    response = JsonResponse(_run_progress(run))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@org_view("models")
def model_version_activate(request: OrgRequest, version_id: int) -> HttpResponse:
    version = selectors.model_version_get(org=request.org, version_id=version_id)
    if version is None:
        raise Http404("No such model version.")
    services.model_version_activate(org=request.org, version=version)
    messages.success(
        request,
        f"Version {version.version} is now active: new feedback gets its categories, and "
        "stored feedback is being categorised again in the background.",
    )
    return redirect("models", org_slug=request.org.slug)


@require_POST
@org_view("models")
def model_version_rollback(request: OrgRequest) -> HttpResponse:
    try:
        version = services.model_version_rollback(org=request.org, task=Task.CATEGORY)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Rolled back: version {version.version} is active again; stored feedback is being "
            "categorised with it in the background.",
        )
    return redirect("models", org_slug=request.org.slug)


@require_POST
@org_view("models")
def model_version_deactivate(request: OrgRequest) -> HttpResponse:
    services.model_version_deactivate(org=request.org, task=Task.CATEGORY)
    messages.success(
        request,
        "Your category model is switched off: new feedback is not categorised, stored feedback "
        "keeps its categories. Roll back to switch the same version on again.",
    )
    return redirect("models", org_slug=request.org.slug)
