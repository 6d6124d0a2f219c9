"""With the shipped models broken, ingestion answers 503 (problem+json) and stores nothing."""

from __future__ import annotations

import shutil

import pytest

from feedback.models import Feedback
from tests.inference.conftest import MODEL_DIR

pytestmark = pytest.mark.django_db


def test_ingest_with_corrupt_models_is_a_503_and_stores_nothing(api_key_client, settings, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(MODEL_DIR, broken)
    (broken / "sentiment.onnx").write_bytes(b"not a model")
    settings.ONNX_MODEL_DIR = str(broken)

    response = api_key_client.post("/api/v1/feedback", {"text": "Ayos lang po"}, format="json")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/problem+json")
    assert response["Retry-After"] == "30"
    assert response.json()["code"] == "models_unavailable"
    assert not Feedback.objects.exists()
