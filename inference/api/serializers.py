from __future__ import annotations

from rest_framework import serializers

from inference.models import CategoryExample, LabelSet, ModelVersion, TrainingRun
from saas.serializers import StrictInputSerializer


class LabelSetSerializer(serializers.ModelSerializer[LabelSet]):
    example_counts = serializers.SerializerMethodField()

    class Meta:
        model = LabelSet
        fields = ("id", "name", "labels", "created_at", "example_counts")
        read_only_fields = fields

    def get_example_counts(self, obj: LabelSet) -> dict[str, int]:
        return dict(self.context.get("counts", {}).get(obj.pk, {}))


class LabelSetInSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=60), min_length=2, max_length=50
    )


class ExampleSerializer(serializers.ModelSerializer[CategoryExample]):
    class Meta:
        model = CategoryExample
        fields = ("id", "text", "label", "source", "created_at")
        read_only_fields = fields


class ExampleInSerializer(StrictInputSerializer):
    text = serializers.CharField(max_length=10_000)
    label = serializers.CharField(max_length=60)  # type: ignore[assignment]


class ExamplesInSerializer(StrictInputSerializer):
    examples = serializers.ListField(child=ExampleInSerializer(), min_length=1, max_length=1_000)


class ModelVersionSerializer(serializers.ModelSerializer[ModelVersion]):
    org_owned = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = (
            "id",
            "task",
            "version",
            "label_set",
            "sha256",
            "labels",
            "metrics",
            "status",
            "created_at",
            "activated_at",
            "org_owned",
        )
        read_only_fields = fields

    def get_org_owned(self, obj: ModelVersion) -> bool:
        return obj.organization_id is not None


class TrainingRunSerializer(serializers.ModelSerializer[TrainingRun]):
    class Meta:
        model = TrainingRun
        fields = (
            "id",
            "label_set",
            "status",
            "error",
            "model_version",
            "created_at",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields


class ModelTaskInSerializer(StrictInputSerializer):
    """Which of the org's own models a roll back or switch-off is for (only categories so far)."""

    task = serializers.ChoiceField(choices=["category"], default="category")
