"""Records built positionally for ingestion equal records built with Django's keywords."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import signals

from feedback.models import Feedback
from feedback.services import FeedbackInput, _new_records
from inference.classify import classify
from tenants.models import Organization

pytestmark = pytest.mark.django_db


def _state(record: Feedback) -> dict[str, object]:
    values = {k: v for k, v in record.__dict__.items() if k != "_state"}
    return {**values, "_cached": dict(record._state.fields_cache), "_adding": record._state.adding}


@pytest.mark.parametrize("init_listened", [False, True])
def test_records_built_for_ingestion_equal_keyword_records(
    org: Organization, init_listened: bool
) -> None:
    items = [
        FeedbackInput(text="Ang bagal ng wifi", import_row=3),
        FeedbackInput(
            text="Great teacher!",
            source="form",
            external_id="e-1",
            author_ref="s-9",
            submitted_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            metadata={"grade": 7},
        ),
    ]
    predictions = classify(org_id=org.pk, texts=[i.text for i in items])
    seen: list[Feedback] = []

    def listener(sender: type[Feedback], instance: Feedback, **kwargs: object) -> None:
        seen.append(instance)

    if init_listened:  # something (a field tracker, say) needs Model.__init__ to run
        signals.post_init.connect(listener, sender=Feedback)
    try:
        built = _new_records(org, list(enumerate(items)), predictions, import_job_id=None)
    finally:
        signals.post_init.disconnect(listener, sender=Feedback)
    if init_listened:  # Model.__init__ ran for every record (seen[0] is the template)
        assert seen[1:] == built
    for record, item, p in zip(built, items, predictions, strict=True):
        expected = Feedback(
            organization=org,
            text=item.text,
            source=item.source,
            external_id=item.external_id,
            author_ref=item.author_ref,
            submitted_at=item.submitted_at,
            received_at=record.received_at,
            metadata=item.metadata,
            sentiment=p.sentiment,
            sentiment_scores=p.sentiment_scores,
            language=p.language,
            language_score=p.language_score,
            category=p.category,
            category_score=p.category_score,
            anomaly_score=p.anomaly_score,
            flagged=p.flagged,
            reasons=list(p.reasons),
            model_versions=p.model_versions,
            import_job_id=None,
            import_row=item.import_row,
        )
        assert _state(record) == _state(expected)
