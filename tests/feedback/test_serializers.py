"""FeedbackSerializer's hand-built representation equals what ModelSerializer would build."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from rest_framework import serializers

from feedback.api.serializers import FeedbackSerializer
from feedback.models import Feedback, ReviewStatus

pytestmark = pytest.mark.django_db


def generic(record: Feedback) -> dict[str, Any]:
    return serializers.ModelSerializer.to_representation(FeedbackSerializer(), record)


def test_the_fast_representation_equals_the_generic_one(api_key_client, owner):
    created = api_key_client.post(
        "/api/v1/feedback",
        {"text": "Sira pa rin ang aircon sa room 204", "external_id": "x-1", "metadata": {"a": 1}},
        format="json",
    )
    assert created.status_code == 201
    record = Feedback.objects.select_related("reviewed_by").get(pk=created.json()["id"])
    assert FeedbackSerializer(record).data == generic(record)

    record.submitted_at = dt.datetime(2026, 11, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
    record.category, record.category_score = "Facilities", 0.75
    record.corrected_sentiment, record.corrected_category = "negative", "Facilities"
    record.status = ReviewStatus.REVIEWED
    record.reviewed_by = owner.user
    record.reviewed_at = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
    record.external_id, record.author_ref = None, ""
    record.save()
    record.refresh_from_db()
    fast = FeedbackSerializer(record).data
    assert fast == generic(record)
    assert fast["submitted_at"] == "2026-11-02T03:04:05.600000Z"
    many = FeedbackSerializer([record, record], many=True).data
    assert list(many) == [generic(record)] * 2
