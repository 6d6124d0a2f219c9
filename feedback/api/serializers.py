from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from feedback.models import Feedback, ImportJob, Language, ReviewStatus, Sentiment
from feedback.services import (
    MAX_AUTHOR_REF_CHARS,
    MAX_BATCH_ITEMS,
    MAX_EXTERNAL_ID_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TEXT_CHARS,
    FeedbackInput,
)
from saas.serializers import StrictCharField, StrictInputSerializer


class FeedbackInSerializer(StrictInputSerializer):
    text = StrictCharField(max_length=MAX_TEXT_CHARS * 2, trim_whitespace=True)
    source = StrictCharField(  # type: ignore[assignment]  # a field named like Field.source
        max_length=MAX_SOURCE_CHARS, required=False, default="api"
    )
    external_id = StrictCharField(
        max_length=MAX_EXTERNAL_ID_CHARS, required=False, allow_null=True, default=None
    )
    author_ref = StrictCharField(
        max_length=MAX_AUTHOR_REF_CHARS, required=False, allow_blank=True, default=""
    )
    submitted_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    metadata = serializers.DictField(required=False, default=dict)

    def to_input(self) -> FeedbackInput:
        return FeedbackInput(**self.validated_data)


@extend_schema_field(OpenApiTypes.ANY)
class ParsedJSONField(serializers.Field):  # type: ignore[type-arg]
    """Any value of a parsed JSON body, taken as it is.

    DRF's JSONField proves a value serializable by encoding it, ~5 µs per batch item; a value the
    JSON parser produced always is. The batch endpoint parses JSON only, and validates each
    item on its own so that a bad one is reported by its index instead of failing the batch.
    """

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class BatchInSerializer(StrictInputSerializer):
    items = serializers.ListField(child=ParsedJSONField(), min_length=1, max_length=MAX_BATCH_ITEMS)


class SentimentOutSerializer(serializers.Serializer[Any]):
    label = serializers.ChoiceField(choices=Sentiment.choices)  # type: ignore[assignment]
    scores = serializers.DictField(child=serializers.FloatField())


class LanguageOutSerializer(serializers.Serializer[Any]):
    code = serializers.ChoiceField(choices=Language.choices)
    score = serializers.FloatField()


class CategoryOutSerializer(serializers.Serializer[Any]):
    label = serializers.CharField()  # type: ignore[assignment]
    score = serializers.FloatField()


class AnomalyOutSerializer(serializers.Serializer[Any]):
    score = serializers.FloatField()
    flagged = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class ReviewOutSerializer(serializers.Serializer[Any]):
    corrected_sentiment = serializers.CharField(allow_null=True)
    corrected_category = serializers.CharField(allow_null=True)
    reviewed_by = serializers.EmailField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)


_DATETIME = serializers.DateTimeField()


def prediction_payload(obj: Any) -> dict[str, Any]:
    """The API's classification shape, from a stored Feedback or a runtime Prediction (they
    carry the same prediction attribute names), so records and /classify never drift apart."""
    return {
        "sentiment": {"label": obj.sentiment, "scores": obj.sentiment_scores},
        "language": {"code": obj.language, "score": obj.language_score},
        "category": None
        if obj.category is None
        else {"label": obj.category, "score": obj.category_score},
        "anomaly": {
            "score": obj.anomaly_score,
            "flagged": obj.flagged,
            "reasons": list(obj.reasons),
        },
        "model_versions": obj.model_versions,
    }


class FeedbackSerializer(serializers.ModelSerializer[Feedback]):
    sentiment = serializers.SerializerMethodField()
    language = serializers.SerializerMethodField()
    category = serializers.SerializerMethodField()
    anomaly = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()

    class Meta:
        model = Feedback
        fields = (
            "id",
            "text",
            "source",
            "external_id",
            "author_ref",
            "submitted_at",
            "received_at",
            "metadata",
            "sentiment",
            "language",
            "category",
            "anomaly",
            "model_versions",
            "status",
            "review",
        )
        read_only_fields = fields

    def to_representation(self, instance: Feedback) -> dict[str, Any]:
        """What ModelSerializer would return (tested field by field), built directly: building
        this serializer's fields takes longer than inserting the record it describes."""
        prediction = prediction_payload(instance)
        return {
            "id": instance.pk,
            "text": instance.text,
            "source": instance.source,
            "external_id": instance.external_id,
            "author_ref": instance.author_ref,
            "submitted_at": _DATETIME.to_representation(instance.submitted_at)
            if instance.submitted_at is not None
            else None,
            "received_at": _DATETIME.to_representation(instance.received_at),
            "metadata": instance.metadata,
            "sentiment": prediction["sentiment"],
            "language": prediction["language"],
            "category": prediction["category"],
            "anomaly": prediction["anomaly"],
            "model_versions": instance.model_versions,
            "status": instance.status,
            "review": self.get_review(instance),
        }

    @extend_schema_field(SentimentOutSerializer)
    def get_sentiment(self, obj: Feedback) -> dict[str, Any]:
        return dict(prediction_payload(obj)["sentiment"])

    @extend_schema_field(LanguageOutSerializer)
    def get_language(self, obj: Feedback) -> dict[str, Any]:
        return dict(prediction_payload(obj)["language"])

    @extend_schema_field(CategoryOutSerializer(allow_null=True))
    def get_category(self, obj: Feedback) -> dict[str, Any] | None:
        category: dict[str, Any] | None = prediction_payload(obj)["category"]
        return category

    @extend_schema_field(AnomalyOutSerializer)
    def get_anomaly(self, obj: Feedback) -> dict[str, Any]:
        return dict(prediction_payload(obj)["anomaly"])

    @extend_schema_field(ReviewOutSerializer)
    def get_review(self, obj: Feedback) -> dict[str, Any]:
        return {
            "corrected_sentiment": obj.corrected_sentiment,
            "corrected_category": obj.corrected_category,
            "reviewed_by": obj.reviewed_by.email if obj.reviewed_by else None,
            "reviewed_at": obj.reviewed_at,
        }


class FeedbackReviewSerializer(StrictInputSerializer):
    corrected_sentiment = serializers.ChoiceField(
        choices=Sentiment.choices, required=False, allow_null=True
    )
    corrected_category = serializers.CharField(max_length=60, required=False, allow_null=True)
    status = serializers.ChoiceField(choices=ReviewStatus.choices, required=False)


class BatchResultItemSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "existing", "error"])
    id = serializers.IntegerField(required=False)
    errors = serializers.DictField(required=False)  # type: ignore[assignment]


class BatchOutSerializer(serializers.Serializer[Any]):
    created = serializers.IntegerField()
    existing = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = BatchResultItemSerializer(many=True)


class ClassifyInSerializer(StrictInputSerializer):
    texts = serializers.ListField(
        child=StrictCharField(max_length=MAX_TEXT_CHARS * 2), min_length=1, max_length=100
    )


class PredictionSerializer(serializers.Serializer[Any]):
    sentiment = SentimentOutSerializer()
    language = LanguageOutSerializer()
    category = CategoryOutSerializer(allow_null=True)
    anomaly = AnomalyOutSerializer()
    model_versions = serializers.DictField(child=serializers.CharField())


class ClassifyOutSerializer(serializers.Serializer[Any]):
    results = PredictionSerializer(many=True)


class StatsQuerySerializer(StrictInputSerializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    interval = serializers.ChoiceField(choices=["day", "week"], default="day")


class StatsBucketSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    total = serializers.IntegerField()
    negative = serializers.IntegerField()
    neutral = serializers.IntegerField()
    positive = serializers.IntegerField()
    flagged = serializers.IntegerField()


class StatsOutSerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    interval = serializers.ChoiceField(choices=["day", "week"])
    total = serializers.IntegerField()
    sentiment = serializers.DictField(child=serializers.IntegerField())
    language = serializers.DictField(child=serializers.IntegerField())
    category = serializers.DictField(child=serializers.IntegerField())
    source = serializers.DictField(child=serializers.IntegerField())  # type: ignore[assignment]
    flagged = serializers.IntegerField()
    series = StatsBucketSerializer(many=True)


class UsageOutSerializer(serializers.Serializer[Any]):
    plan = serializers.CharField()
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    items = serializers.IntegerField()
    items_quota = serializers.IntegerField()
    items_remaining = serializers.IntegerField()
    request_rate = serializers.CharField(help_text="Requests per key, e.g. 600/m.")
    requests = serializers.IntegerField()


class FeedbackFilterSerializer(serializers.Serializer[Any]):
    sentiment = serializers.ChoiceField(choices=Sentiment.choices, required=False)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    category = serializers.CharField(max_length=60, required=False)
    flagged = serializers.BooleanField(required=False, allow_null=True, default=None)
    status = serializers.ChoiceField(choices=ReviewStatus.choices, required=False)
    source = serializers.CharField(max_length=MAX_SOURCE_CHARS, required=False)  # type: ignore[assignment]
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    q = serializers.CharField(max_length=200, required=False)


class ImportJobSerializer(serializers.ModelSerializer[ImportJob]):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = (
            "id",
            "filename",
            "size_bytes",
            "status",
            "total_rows",
            "processed_rows",
            "created_count",
            "duplicate_count",
            "error_count",
            "progress",
            "failure",
            "mapping",
            "created_at",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields

    def get_progress(self, obj: ImportJob) -> float:
        if not obj.total_rows:
            return 1.0 if obj.status == ImportJob.Status.SUCCEEDED else 0.0
        return round(min(1.0, obj.processed_rows / obj.total_rows), 4)
