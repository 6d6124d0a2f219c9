from __future__ import annotations

import re
from typing import Any

from django import forms

from reports.models import Frequency, WebhookEvent, Weekday
from tenants.models import Organization
from tenants.selectors import member_list


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=100, initial="Weekly summary")
    frequency = forms.ChoiceField(choices=Frequency.choices, initial=Frequency.WEEKLY)
    weekday = forms.TypedChoiceField(
        choices=Weekday.choices,
        coerce=int,
        required=False,
        initial=Weekday.MONDAY,
        help_text="For weekly reports.",
    )
    day_of_month = forms.IntegerField(
        min_value=1,
        max_value=31,
        required=False,
        help_text="For monthly reports; 31 means the month's last day.",
    )
    hour = forms.IntegerField(
        min_value=0, max_value=23, initial=8, help_text="In the organization's time zone."
    )
    recipient_member_ids = forms.TypedMultipleChoiceField(
        coerce=int, required=False, label="Members", widget=forms.CheckboxSelectMultiple
    )
    recipient_emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Other email addresses",
        help_text="Separated by commas or new lines.",
    )
    source = forms.CharField(
        max_length=50, required=False, help_text="Only this source (optional)."
    )
    category = forms.CharField(
        max_length=60, required=False, help_text="Only this category (optional)."
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["recipient_member_ids"]
        assert isinstance(field, forms.TypedMultipleChoiceField)  # noqa: S101  # nosec B101 # type narrowing; declared above
        field.choices = [(m.pk, m.user.email) for m in member_list(org=org)]

    def clean_recipient_emails(self) -> list[str]:
        raw = self.cleaned_data.get("recipient_emails") or ""
        return [e for e in re.split(r"[\s,;]+", raw) if e]


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=500, label="URL", assume_scheme="https")
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[WebhookEvent.ALERT_FIRED],
    )
