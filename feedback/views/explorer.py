"""The feedback explorer (filters, search, review, bulk status, CSV export) and detail page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from feedback import selectors, services
from feedback.exports import feedback_export_csv
from feedback.forms import BulkStatusForm, FeedbackFilterForm, ReviewForm, org_tz
from feedback.models import Feedback, ReviewStatus
from feedback.views._common import feedback_or_404, safe_next, wants_json
from inference import selectors as inference_selectors
from tenants.context import streamed_for_org
from tenants.decorators import OrgRequest, org_view

PAGE_SIZE = 25
MAX_BULK_IDS = 500
WHY_TERMS = 8


def _filtered(request: OrgRequest) -> tuple[FeedbackFilterForm, Any]:
    form = FeedbackFilterForm(request.GET)
    filters = form.filters(tz=org_tz(request.org.timezone))
    return form, selectors.feedback_list(org=request.org, filters=filters)


def _correction_labels(request: OrgRequest) -> list[str]:
    label_set = inference_selectors.label_set_for_corrections(org=request.org)
    return list(label_set.labels) if label_set else []


@org_view("feedback")
def feedback_explorer(request: OrgRequest) -> HttpResponse:
    form, rows = _filtered(request)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "feedback/explorer.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "categories": _correction_labels(request),
            "sources": selectors.feedback_sources(org=request.org),
            "sentiments": ReviewForm.base_fields["corrected_sentiment"].choices,  # type: ignore[attr-defined]
            "here": request.get_full_path(),
        },
    )


@require_GET
@org_view("feedback")
def feedback_export(request: OrgRequest) -> StreamingHttpResponse:
    """The current filter as CSV, streamed so a large export never sits in memory."""
    form, rows = _filtered(request)
    # The audit trail keeps the filters that applied (the form's valid fields), not raw query
    # text: unknown keys and NUL characters (which jsonb refuses) never reach it.
    filters = {
        name: str(value)
        for name, value in form.cleaned_data.items()
        if name not in form.errors and value not in (None, "", [])
    }
    response = StreamingHttpResponse(
        streamed_for_org(
            request.org, feedback_export_csv(org=request.org, rows=rows, filters=filters)
        ),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    filename = f"puna-{request.org.slug}-feedback-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
@org_view("feedback")
def feedback_bulk_status(request: OrgRequest) -> HttpResponse:
    back = safe_next(request, reverse("feedback-list", args=[request.org.slug]))
    form = BulkStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Select at least one item and an action.")
        return redirect(back)
    ids = set(form.cleaned_data["ids"])
    if len(ids) > MAX_BULK_IDS:
        messages.error(request, f"Select at most {MAX_BULK_IDS} items at a time.")
        return redirect(back)
    # All or nothing: an id that is not the org's is "not found", like a missing one.
    if selectors.feedback_list(org=request.org).filter(pk__in=ids).count() != len(ids):
        raise Http404("No such feedback.")
    status = form.cleaned_data["status"]
    changed = services.feedback_bulk_status(
        org=request.org, ids=sorted(ids), status=status, actor=request.user
    )
    verb = "marked reviewed" if status == ReviewStatus.REVIEWED else "dismissed"
    messages.success(request, f"{changed} item{'s' if changed != 1 else ''} {verb}.")
    return redirect(back)


def _review_payload(feedback: Feedback) -> dict[str, Any]:
    return {
        "id": feedback.pk,
        "sentiment": feedback.effective_sentiment,
        "category": feedback.effective_category,
        "status": feedback.status,
    }


def _changes(feedback: Feedback, submitted: dict[str, Any]) -> dict[str, Any]:
    """Only what the person changed: the row's selects also carry the labels left as they were.

    Saving without changing anything still means "I looked at it": a new item becomes reviewed.
    """
    current = {
        "corrected_sentiment": feedback.effective_sentiment,
        "corrected_category": feedback.effective_category,
        "status": feedback.status,
    }
    changes = {name: value for name, value in submitted.items() if value != current[name]}
    if not changes and feedback.status == ReviewStatus.NEW:
        changes = {"status": ReviewStatus.REVIEWED}
    return changes


@require_POST
@org_view("feedback")
def feedback_review(request: OrgRequest, feedback_id: int) -> HttpResponse:
    """Correct sentiment/category or set the status of one item (corrections train models)."""
    feedback = feedback_or_404(request, feedback_id)
    back = safe_next(request, reverse("feedback-detail", args=[request.org.slug, feedback.pk]))
    form = ReviewForm(request.POST)
    errors: dict[str, list[str]] = {}
    if not form.is_valid():
        errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
    else:
        try:
            services.feedback_review(
                org=request.org,
                feedback=feedback,
                actor=request.user,
                changes=_changes(feedback, form.changes()),
            )
        except ValidationError as exc:
            errors = exc.message_dict
    if wants_json(request):
        if errors:
            return JsonResponse({"ok": False, "errors": errors}, status=400)
        return JsonResponse({"ok": True, "feedback": _review_payload(feedback)})
    if errors:
        for messages_ in errors.values():
            messages.error(request, " ".join(messages_))
    else:
        messages.success(request, "Saved.")
    return redirect(back)


def _why(text: str) -> list[dict[str, Any]]:
    """The terms that pushed the sentiment decision, with their share of the strongest."""
    from inference.classify import engine
    from inference.runtime import ModelError

    try:
        terms = engine().explain(text, top=WHY_TERMS)
    except (ModelError, ValueError, TypeError):
        # Explanations are a help, never a reason for the page to fail.
        return []
    strongest = terms[0][1] if terms else 1.0
    return [
        {
            "term": term.removeprefix("char:"),
            "characters": term.startswith("char:"),
            "weight": weight,
            "share": round(100 * weight / strongest),
        }
        for term, weight in terms
    ]


@org_view("feedback")
def feedback_detail(request: OrgRequest, feedback_id: int) -> HttpResponse:
    feedback = feedback_or_404(request, feedback_id)
    scores = sorted(feedback.sentiment_scores.items(), key=lambda kv: -float(kv[1]))
    return render(
        request,
        "feedback/detail.html",
        {
            "fb": feedback,
            "scores": [(label, round(100 * float(p), 1)) for label, p in scores],
            "why": _why(feedback.text),
            "events": selectors.review_event_list(org=request.org, feedback=feedback),
            "categories": _correction_labels(request),
            "sentiments": ReviewForm.base_fields["corrected_sentiment"].choices,  # type: ignore[attr-defined]
            "statuses": ReviewStatus.choices,
        },
    )
