"""Account pages (sign-up, sign-in, password reset, invitations) and org administration."""

from __future__ import annotations

from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from saas.ratelimits import limit
from tenants import selectors, services
from tenants.api.base import SESSION_ORG_KEY
from tenants.decorators import OrgRequest, org_object_or_404, org_view
from tenants.forms import (
    ApiKeyForm,
    AuditFilterForm,
    EmailAuthenticationForm,
    InvitationForm,
    OrgSettingsForm,
    RoleForm,
    SignupForm,
)
from tenants.models import ApiKey, Invitation, Membership, User


def _add_errors(form: Form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


# --- accounts --------------------------------------------------------------------------------


@limit(key="ip", rate=settings.SIGNUP_RATE)
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, org = services.user_signup(**form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("org-overview", org_slug=org.slug)
    return render(request, "tenants/signup.html", {"form": form})


@method_decorator(limit(key="ip", rate=settings.LOGIN_RATE), name="post")
@method_decorator(limit(key="post:username", rate=settings.LOGIN_RATE), name="post")
class LoginView(auth_views.LoginView):
    template_name = "tenants/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


@method_decorator(limit(key="ip", rate=settings.PASSWORD_RESET_RATE), name="post")
@method_decorator(limit(key="post:email", rate=settings.PASSWORD_RESET_RATE), name="post")
class PasswordResetView(auth_views.PasswordResetView):
    template_name = "tenants/password_reset.html"
    email_template_name = "tenants/email/password_reset.txt"
    subject_template_name = "tenants/email/password_reset_subject.txt"


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send a signed-in user to their last org, or their first."""
    memberships = list(selectors.membership_list_for_user(user=cast("User", request.user)))
    if not memberships:
        return render(request, "tenants/no_org.html")
    last = request.session.get(SESSION_ORG_KEY)
    slugs = [m.organization.slug for m in memberships]
    return redirect("org-overview", org_slug=last if last in slugs else slugs[0])


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_get_pending(token=token)
    if invitation is None:
        raise Http404("This invitation is invalid, used or expired.")
    if not request.user.is_authenticated:
        return render(request, "tenants/invitation.html", {"invitation": invitation})
    error = None
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"Welcome to {membership.organization.name}.")
            return redirect("org-overview", org_slug=membership.organization.slug)
    return render(request, "tenants/invitation.html", {"invitation": invitation, "error": error})


# --- organization pages ----------------------------------------------------------------------


@org_view("members")
def members(request: OrgRequest) -> HttpResponse:
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_create(
                org=request.org,
                invited_by=request.user,
                accept_url_base=request.build_absolute_uri("/"),
                **form.cleaned_data,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return redirect("members", org_slug=request.org.slug)
    return render(
        request,
        "tenants/members.html",
        {
            "members": selectors.member_list(org=request.org),
            "invitations": selectors.invitation_list(org=request.org),
            "form": form,
            "role_form": RoleForm(),
        },
    )


def _member(request: OrgRequest, membership_id: int) -> Membership:
    membership = selectors.member_list(org=request.org).filter(pk=membership_id).first()
    if membership is None:
        raise Http404("No such member.")
    return membership


@require_POST
@org_view("members")
def member_role(request: OrgRequest, membership_id: int) -> HttpResponse:
    membership = _member(request, membership_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.membership_change_role(
                membership=membership, role=form.cleaned_data["role"], actor=request.membership
            )
            messages.success(request, f"{membership.user.email} is now {membership.role}.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, "Choose a valid role.")
    return redirect("members", org_slug=request.org.slug)


@require_POST
@org_view("members")
def member_remove(request: OrgRequest, membership_id: int) -> HttpResponse:
    membership = _member(request, membership_id)
    try:
        services.membership_remove(membership=membership, actor=request.membership)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("members", org_slug=request.org.slug)
    messages.success(request, f"{membership.user.email} was removed.")
    return redirect("members", org_slug=request.org.slug)


@require_POST
@org_view("members", scope="members:read")
def org_leave(request: OrgRequest) -> HttpResponse:
    """Any member may leave (reading is all it takes to be a member); the last owner may not."""
    try:
        services.membership_remove(membership=request.membership, actor=request.membership)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("members", org_slug=request.org.slug)
    request.session.pop(SESSION_ORG_KEY, None)
    messages.success(request, f"You left {request.org.name}.")
    return redirect("home")


@require_POST
@org_view("members")
def invitation_revoke(request: OrgRequest, invitation_id: int) -> HttpResponse:
    invitation = org_object_or_404(Invitation, org=request.org, pk=invitation_id)
    services.invitation_revoke(invitation=invitation)
    messages.success(request, f"Invitation to {invitation.email} withdrawn.")
    return redirect("members", org_slug=request.org.slug)


@org_view("keys")
def api_keys(request: OrgRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    context: dict[str, Any] = {}
    if request.method == "POST" and form.is_valid():
        try:
            api_key, raw = services.api_key_create(
                org=request.org, created_by=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            # Shown on this response only; it is never stored or shown again.
            context["new_key"] = raw
            context["new_key_name"] = api_key.name
            form = ApiKeyForm()
    context.update({"form": form, "keys": selectors.api_key_list(org=request.org)})
    return render(request, "tenants/api_keys.html", context)


@require_POST
@org_view("keys")
def api_key_revoke(request: OrgRequest, key_id: int) -> HttpResponse:
    api_key = org_object_or_404(ApiKey, org=request.org, pk=key_id)
    services.api_key_revoke(api_key=api_key)
    messages.success(request, f"Key “{api_key.name}” revoked.")
    return redirect("api-keys", org_slug=request.org.slug)


@org_view("org")
def org_settings(request: OrgRequest) -> HttpResponse:
    initial = {"name": request.org.name, "timezone": request.org.timezone}
    form = OrgSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.org_update(
                org=request.org, name=form.cleaned_data["name"], tz=form.cleaned_data["timezone"]
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("org-settings", org_slug=request.org.slug)
    return render(request, "tenants/settings.html", {"form": form})


AUDIT_PAGE_SIZE = 50


@require_GET
@org_view("audit")
def audit_log(request: OrgRequest) -> HttpResponse:
    """The org's audit trail with filters (owners and admins; others get 403 like any page
    their role does not reach)."""
    form = AuditFilterForm(request.GET)
    # org_update only accepts known zones, so the org's zone always loads.
    tz = ZoneInfo(request.org.timezone)
    events = selectors.audit_event_list(org=request.org, **form.filters(tz=tz))
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "tenants/audit.html", {"form": form, "page": page, "query": query.urlencode()}
    )
