"""Dashboard forms for the org's categories and models."""

from __future__ import annotations

import re

from django import forms


class LabelSetForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="E.g. “Student feedback topics”.")
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One category per line (or separated by commas), 2 to 50 of them.",
    )

    def clean_labels(self) -> list[str]:
        return [part.strip() for part in re.split(r"[\n,]", self.cleaned_data["labels"])]


class ExampleForm(forms.Form):
    """A text labelled by hand, or one of the org's feedback items by id."""

    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=10_000
    )
    feedback_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    label = forms.CharField(max_length=60)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("text") and not data.get("feedback_id"):
            raise forms.ValidationError("Write the text to label.")
        return data
