"""CSV upload: a column-mapping preview, then the import job's live progress and error report."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from feedback import imports, selectors
from feedback.forms import IMPORT_TARGETS, ImportForm
from feedback.models import ImportJob
from feedback.views._common import add_errors
from tenants.decorators import OrgRequest, org_view

RECENT_IMPORTS = 10
SHOWN_ERRORS = 100
# The service's field names for mapping errors, as the form's.
MAPPING_ERRORS = {f"mapping.{target}": f"map_{target}" for target, _ in IMPORT_TARGETS}


def _preview(content: bytes) -> dict[str, Any] | None:
    try:
        return imports.import_preview(content=content)
    except ValidationError:
        return None


@org_view("imports")
def import_upload(request: OrgRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None, initial={"source": "csv"})
    preview: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        content = upload.read()
        if request.POST.get("action") == "preview":
            try:
                preview = imports.import_preview(content=content)
            except ValidationError as exc:
                add_errors(form, exc)
        else:
            try:
                job = imports.import_create(
                    org=request.org,
                    filename=upload.name or "upload.csv",
                    content=content,
                    mapping=form.mapping(),
                    created_by=request.user,
                    default_source=form.cleaned_data["source"] or "csv",
                )
            except ValidationError as exc:
                add_errors(form, exc, aliases=MAPPING_ERRORS)
                # Show the columns so the person can say which one holds what.
                preview = _preview(content)
            else:
                return redirect("import-detail", org_slug=request.org.slug, import_id=job.pk)
    if preview is not None:
        chosen = (form.mapping() if form.is_valid() else None) or preview["mapping"]
        preview["fields"] = [
            {"target": target, "label": label, "selected": chosen.get(target, "")}
            for target, label in IMPORT_TARGETS
        ]
    context = {
        "form": form,
        "preview": preview,
        "jobs": selectors.import_job_list(org=request.org)[:RECENT_IMPORTS],
        "max_bytes": settings.MAX_REQUEST_BODY_BYTES,
    }
    if request.headers.get("X-Puna-Fragment") == "preview":
        # The upload page's script asks for just the preview, keeping the chosen file.
        return render(request, "feedback/_import_preview.html", context)
    return render(request, "feedback/imports.html", context)


def _job_or_404(request: OrgRequest, import_id: int) -> ImportJob:
    job = selectors.import_job_get(org=request.org, job_id=import_id)
    if job is None:
        raise Http404("No such import.")
    return job


def _progress(job: ImportJob) -> dict[str, Any]:
    done = job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED)
    total = job.total_rows or 0
    if total:
        percent = min(100, round(100 * job.processed_rows / total))
    else:
        percent = 100 if job.status == ImportJob.Status.SUCCEEDED else 0
    return {
        "status": job.status,
        "status_label": job.get_status_display(),
        "done": done,
        "percent": percent,
        "processed": job.processed_rows,
        "total": total,
        "created": job.created_count,
        "duplicates": job.duplicate_count,
        "errors": job.error_count,
        "text": f"{job.get_status_display()}: {job.processed_rows} of {total} rows ({percent}%)",
    }


@org_view("imports")
def import_detail(request: OrgRequest, import_id: int) -> HttpResponse:
    job = _job_or_404(request, import_id)
    return render(
        request,
        "feedback/import_detail.html",
        {"job": job, "progress": _progress(job), "errors": job.errors[:SHOWN_ERRORS]},
    )


@require_GET
@org_view("imports")
def import_progress(request: OrgRequest, import_id: int) -> JsonResponse:
    """Polled by the progress bar while the worker runs the import."""
    response = JsonResponse(_progress(_job_or_404(request, import_id)))
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@org_view("imports")
def import_errors(request: OrgRequest, import_id: int) -> HttpResponse:
    """The row error report (row, field, reason) as CSV, cells neutralised for spreadsheets."""
    job = _job_or_404(request, import_id)
    response = HttpResponse(imports.import_errors_csv(job=job), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
