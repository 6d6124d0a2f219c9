"""Operators' admin for the model registry (staff only)."""

from __future__ import annotations

from django.contrib import admin

from inference.models import CategoryExample, LabelSet, ModelVersion, TrainingRun


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin[ModelVersion]):
    list_display = ("task", "version", "organization", "status", "created_at", "activated_at")
    list_filter = ("task", "status", "organization")
    exclude = ("artifact",)
    readonly_fields = ("sha256", "metrics", "labels", "data_fingerprint")


@admin.register(LabelSet)
class LabelSetAdmin(admin.ModelAdmin[LabelSet]):
    list_display = ("name", "organization", "created_at")
    list_filter = ("organization",)


@admin.register(CategoryExample)
class CategoryExampleAdmin(admin.ModelAdmin[CategoryExample]):
    list_display = ("label", "label_set", "organization", "source", "created_at")
    list_filter = ("organization", "source")
    search_fields = ("text",)


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin[TrainingRun]):
    list_display = ("id", "organization", "label_set", "status", "created_at", "finished_at")
    list_filter = ("organization", "status")
