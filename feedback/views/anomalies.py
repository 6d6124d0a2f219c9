"""Flagged feedback grouped by why it was flagged, to confirm or dismiss."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from feedback import selectors
from feedback.models import ReviewStatus
from tenants.decorators import OrgRequest, org_view

PER_REASON = 5
PAGE_SIZE = 25

REASON_HELP = {
    "abuse": "Insults, slurs or threats.",
    "spam_link": "Links or advertising.",
    "contact_harvest": "Asks for or posts phone numbers, emails or account details.",
    "gibberish": "Keyboard mashing or text that is not words.",
    "repetition": "The same words or characters over and over.",
    "shouting": "Mostly capital letters or exclamation marks.",
    "outlier": "Unlike the feedback the model has seen, though no single rule fired.",
}
STATUS_CHOICES = (
    ("new", "Open"),
    ("reviewed", "Confirmed"),
    ("dismissed", "Dismissed"),
    ("", "All"),
)


@org_view("feedback")
def anomalies(request: OrgRequest) -> HttpResponse:
    status = request.GET.get("status", ReviewStatus.NEW)
    if status not in ReviewStatus.values:
        status = ""
    reason = request.GET.get("reason", "")
    counts = selectors.anomaly_reason_counts(org=request.org, status=status or None)
    flagged = selectors.feedback_list(
        org=request.org, filters=selectors.FeedbackFilters(flagged=True, status=status or None)
    )
    context: dict[str, Any] = {
        "status": status,
        "statuses": STATUS_CHOICES,
        "counts": counts,
        "reason": reason,
    }
    if reason:
        # One reason, all of its items, a page at a time.
        rows = flagged.filter(reasons__contains=[reason])
        context["page"] = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
        context["help"] = REASON_HELP.get(reason, "")
        context["query"] = urlencode({"status": status, "reason": reason})
    else:
        context["groups"] = [
            {
                "reason": name,
                "count": n,
                "help": REASON_HELP.get(name, ""),
                "items": flagged.filter(reasons__contains=[name])[:PER_REASON],
            }
            for name, n in counts
        ]
    return render(request, "feedback/anomalies.html", context)
