from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from tenants.models import ApiKeyScope, AuditAction, Role


class SignupForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False, label="Your name")
    email = forms.EmailField(max_length=254)
    password = forms.CharField(widget=forms.PasswordInput, min_length=10, max_length=128)
    org_name = forms.CharField(max_length=120, label="Organization name")


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True})
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where the key is used, e.g. 'Survey form'.")
    scope = forms.ChoiceField(choices=ApiKeyScope.choices, initial=ApiKeyScope.WRITE)
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional.",
    )


class OrgSettingsForm(forms.Form):
    name = forms.CharField(max_length=120)
    timezone = forms.CharField(max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import zoneinfo

        choices = sorted(zoneinfo.available_timezones())
        self.fields["timezone"] = forms.ChoiceField(choices=[(z, z) for z in choices])


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(choices=[("", "Any action"), *AuditAction.choices], required=False)
    actor = forms.CharField(
        max_length=254, required=False, help_text="Part of an email or key name."
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def filters(self, *, tz: dt.tzinfo) -> dict[str, Any]:
        """Keyword arguments for `audit_event_list`; invalid fields are ignored. Dates are whole
        days in the org's time zone, both ends included."""
        if not self.is_valid():
            data = {k: v for k, v in self.cleaned_data.items() if k not in self.errors}
        else:
            data = self.cleaned_data
        since: dt.date | None = data.get("since")
        until: dt.date | None = data.get("until")
        return {
            "action": data.get("action") or "",
            "actor": (data.get("actor") or "").strip(),
            "since": dt.datetime.combine(since, dt.time(), tzinfo=tz) if since else None,
            # The last day there is (9999-12-31) has no next day: it means no end at all.
            "until": (
                dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tzinfo=tz)
                if until and until < dt.date.max
                else None
            ),
        }
