"""Small helpers the feedback pages share."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import Http404
from django.utils.http import url_has_allowed_host_and_scheme

from feedback import selectors
from feedback.models import Feedback
from tenants.decorators import OrgRequest


def wants_json(request: OrgRequest) -> bool:
    """Our own scripts ask for JSON; a plain form post (no JavaScript) gets a page back."""
    return "application/json" in request.headers.get("Accept", "")


def safe_next(request: OrgRequest, fallback: str) -> str:
    """Where to go after a form post: `next` if it is a page of this org, else `fallback`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if ok and target.startswith(f"/o/{request.org.slug}/") else fallback


def add_errors(form: Form, exc: ValidationError, aliases: dict[str, str] | None = None) -> None:
    """Attach a service's field errors to the form's fields (unknown fields: to the form)."""
    aliases = aliases or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, errors in exc.message_dict.items():
        name = aliases.get(field, field)
        form.add_error(name if name in form.fields else None, errors)


def feedback_or_404(request: OrgRequest, feedback_id: int) -> Feedback:
    """The org's record with this id; another org's id is "not found", like a missing one."""
    feedback = selectors.feedback_get(org=request.org, feedback_id=feedback_id)
    if feedback is None:
        raise Http404("No such feedback.")
    return feedback
