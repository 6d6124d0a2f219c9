"""Dashboard pages for reports, alerts and webhooks, under /o/<org_slug>/ behind org_view."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from reports import selectors, services
from reports.api.views import report_file_response
from reports.forms import ScheduleForm, WebhookForm
from reports.models import Report, ReportSchedule, WebhookEndpoint
from tenants.decorators import OrgRequest, org_object_or_404, org_view

HISTORY_PAGE = 100
DELIVERY_LOG_ROWS = 50


def _add_errors(form: Form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _schedule(request: OrgRequest, schedule_id: int) -> ReportSchedule:
    found = selectors.schedule_list(org=request.org).filter(pk=schedule_id).first()
    if found is None:
        raise Http404("No such schedule.")
    return found


@org_view("reports")
def reports_home(request: OrgRequest) -> HttpResponse:
    """Schedules (and a form to add one), recent reports and recent alerts."""
    form = ScheduleForm(request.POST or None, org=request.org)
    if request.method == "POST" and form.is_valid():
        try:
            services.schedule_create(org=request.org, created_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Schedule “{form.cleaned_data['name']}” created.")
            return redirect("reports", org_slug=request.org.slug)
    schedules = list(selectors.schedule_list(org=request.org))
    return render(
        request,
        "reports/home.html",
        {
            "schedules": [(s, selectors.schedule_next_due(schedule=s)) for s in schedules],
            "reports": selectors.report_list(org=request.org)[:10],
            "alerts": selectors.alert_event_list(org=request.org)[:10],
            "form": form,
        },
    )


@org_view("reports")
def schedule_edit(request: OrgRequest, schedule_id: int) -> HttpResponse:
    found = _schedule(request, schedule_id)
    initial: dict[str, Any] = {
        "name": found.name,
        "frequency": found.frequency,
        "weekday": found.weekday,
        "day_of_month": found.day_of_month,
        "hour": found.hour,
        "recipient_member_ids": [m.pk for m in found.recipient_members.all()],
        "recipient_emails": ", ".join(found.recipient_emails),
        "source": found.source,
        "category": found.category,
        "enabled": found.enabled,
    }
    form = ScheduleForm(request.POST or None, org=request.org, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.schedule_update(schedule=found, changes=form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Schedule saved.")
            return redirect("reports", org_slug=request.org.slug)
    return render(request, "reports/schedule_edit.html", {"schedule": found, "form": form})


@require_POST
@org_view("reports")
def schedule_delete(request: OrgRequest, schedule_id: int) -> HttpResponse:
    found = _schedule(request, schedule_id)
    services.schedule_delete(schedule=found)
    messages.success(request, f"Schedule “{found.name}” deleted; its reports stay in the history.")
    return redirect("reports", org_slug=request.org.slug)


@require_POST
@org_view("reports")
def schedule_send_now(request: OrgRequest, schedule_id: int) -> HttpResponse:
    report = services.report_send_now(schedule=_schedule(request, schedule_id))
    messages.success(
        request, f"Building and sending the report for {report.period_start:%Y-%m-%d} onwards."
    )
    return redirect("report-history", org_slug=request.org.slug)


@require_GET
@org_view("reports")
def schedule_preview(request: OrgRequest, schedule_id: int) -> HttpResponse:
    found = _schedule(request, schedule_id)
    preview = services.report_preview(schedule=found)
    return render(
        request,
        "reports/preview.html",
        {"schedule": found, "stats": preview["stats"], "email_html": preview["html"]},
    )


@require_GET
@org_view("reports")
def report_history(request: OrgRequest) -> HttpResponse:
    return render(
        request,
        "reports/history.html",
        {"reports": selectors.report_list(org=request.org)[:HISTORY_PAGE]},
    )


@require_GET
@org_view("reports")
def report_download(request: OrgRequest, report_id: int, kind: str) -> HttpResponse:
    if kind not in {"pdf", "csv", "html"}:
        raise Http404("No such file.")
    report = org_object_or_404(Report, org=request.org, pk=report_id)
    return report_file_response(report, kind)


@org_view("reports")
def webhooks(request: OrgRequest) -> HttpResponse:
    """Endpoints (and a form to add one, whose secret is shown on this response only) and
    the delivery log."""
    form = WebhookForm(request.POST or None)
    context: dict[str, Any] = {}
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = services.webhook_create(
                org=request.org, created_by=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            context.update(new_secret=secret, new_endpoint=endpoint)
            form = WebhookForm()
    context.update(
        form=form,
        endpoints=selectors.webhook_list(org=request.org),
        deliveries=selectors.delivery_list(org=request.org)[:DELIVERY_LOG_ROWS],
    )
    return render(request, "reports/webhooks.html", context)


@require_POST
@org_view("reports")
def webhook_delete(request: OrgRequest, endpoint_id: int) -> HttpResponse:
    endpoint = org_object_or_404(WebhookEndpoint, org=request.org, pk=endpoint_id)
    services.webhook_delete(endpoint=endpoint)
    messages.success(request, f"Webhook {endpoint.url} removed.")
    return redirect("webhooks", org_slug=request.org.slug)
