"""Dashboard forms: they parse and check input; the services decide what is allowed."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django import forms

from feedback.models import Language, ReviewStatus, Sentiment
from feedback.selectors import FeedbackFilters

ANY = ("", "Any")
PERIODS = (
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("custom", "Custom"),
)
MAX_PERIOD_DAYS = 800


def _day_start(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def org_tz(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


class PeriodForm(forms.Form):
    """The overview's period: the last 7/30/90 days, or whole days in the org's time zone."""

    period = forms.ChoiceField(choices=PERIODS, required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("period") == "custom":
            since, until = data.get("since"), data.get("until")
            if not since or not until:
                raise forms.ValidationError("Give both dates of a custom period.")
            if since > until:
                raise forms.ValidationError("The start date must not be after the end date.")
            if (until - since).days >= MAX_PERIOD_DAYS:
                raise forms.ValidationError(f"A period is at most {MAX_PERIOD_DAYS} days.")
        return data

    def window(self, *, now: dt.datetime, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
        """[since, until) of the chosen period; an invalid form falls back to 30 days."""
        data = self.cleaned_data if self.is_valid() else {}
        period = data.get("period") or "30"
        if period == "custom":
            # Both ends are whole days and the end day is included.
            return (
                _day_start(data["since"], tz),
                _day_start(data["until"] + dt.timedelta(days=1), tz),
            )
        return now - dt.timedelta(days=int(period)), now


class FeedbackFilterForm(forms.Form):
    """The explorer's filters; every field is optional and an invalid one is ignored."""

    q = forms.CharField(label="Search", required=False, max_length=200)
    sentiment = forms.ChoiceField(choices=[ANY, *Sentiment.choices], required=False)
    language = forms.ChoiceField(choices=[ANY, *Language.choices], required=False)
    category = forms.CharField(required=False, max_length=60)
    flagged = forms.ChoiceField(
        choices=[ANY, ("yes", "Flagged"), ("no", "Not flagged")], required=False
    )
    status = forms.ChoiceField(choices=[ANY, *ReviewStatus.choices], required=False)
    source = forms.CharField(required=False, max_length=50)
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def filters(self, *, tz: dt.tzinfo) -> FeedbackFilters:
        self.is_valid()
        data = {name: value for name, value in self.cleaned_data.items() if value not in ("", None)}
        flagged = {"yes": True, "no": False}.get(data.get("flagged", ""))
        return FeedbackFilters(
            q=data.get("q"),
            sentiment=data.get("sentiment"),
            language=data.get("language"),
            category=data.get("category"),
            flagged=flagged,
            status=data.get("status"),
            source=data.get("source"),
            since=_day_start(data["since"], tz) if "since" in data else None,
            # The "to" day is included.
            until=_day_start(data["until"] + dt.timedelta(days=1), tz) if "until" in data else None,
        )


class ReviewForm(forms.Form):
    """A correction from the explorer or the detail page; blank fields are left alone."""

    corrected_sentiment = forms.ChoiceField(
        label="Sentiment", choices=[("", "—"), *Sentiment.choices], required=False
    )
    corrected_category = forms.CharField(label="Category", required=False, max_length=60)
    status = forms.ChoiceField(choices=[("", "—"), *ReviewStatus.choices], required=False)

    def changes(self) -> dict[str, Any]:
        return {name: value for name, value in self.cleaned_data.items() if value}


class IdListField(forms.Field):
    """Several integer ids from checkboxes sharing one name."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        try:
            return [int(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError("Choose items from the list.") from exc


class BulkStatusForm(forms.Form):
    # The view checks that every id is one of the org's before anything changes.
    ids = IdListField(error_messages={"required": "Select at least one item."})
    status = forms.ChoiceField(
        choices=[(ReviewStatus.REVIEWED, "Mark reviewed"), (ReviewStatus.DISMISSED, "Dismiss")]
    )


IMPORT_TARGETS = (
    ("text", "Feedback text"),
    ("source", "Source"),
    ("external_id", "External id"),
    ("submitted_at", "Submitted at"),
    ("author_ref", "Author reference"),
)


class ImportForm(forms.Form):
    """A CSV upload and, after the preview, which column holds what."""

    file = forms.FileField(
        label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"})
    )
    source = forms.CharField(
        label="Source name",
        initial="csv",
        max_length=50,
        required=False,
        help_text="Used for rows without a source column, e.g. “survey-2026”.",
    )

    # Filled from the preview's column choices; the service checks the names against the file.
    map_text = forms.CharField(required=False, max_length=255)
    map_source = forms.CharField(required=False, max_length=255)
    map_external_id = forms.CharField(required=False, max_length=255)
    map_submitted_at = forms.CharField(required=False, max_length=255)
    map_author_ref = forms.CharField(required=False, max_length=255)

    def mapping(self) -> dict[str, Any] | None:
        chosen = {
            target: self.cleaned_data[f"map_{target}"]
            for target, _ in IMPORT_TARGETS
            if self.cleaned_data.get(f"map_{target}")
        }
        return chosen or None
