"""An org's own classifier: validation, cross-validated metrics, export, serving."""

from __future__ import annotations

import pytest

from inference.runtime import ModelError, load_category_model, load_category_model_bytes
from inference.training.classifier import InsufficientExamples, train_text_classifier
from tests.inference.conftest import own_rows

DOMAINS = ("school", "service", "public_office")


@pytest.fixture(scope="module")
def examples() -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    per_label = dict.fromkeys(DOMAINS, 0)
    for row in own_rows():
        domain = row["domain"]
        if domain in per_label and per_label[domain] < 30:
            per_label[domain] += 1
            texts.append(row["text"])
            labels.append(domain)
    return texts, labels


@pytest.fixture(scope="module")
def trained(examples):
    texts, labels = examples
    return train_text_classifier(texts, labels, seed=3, folds=3)


def test_training_reports_cross_validated_metrics(trained):
    assert trained.labels == tuple(sorted(DOMAINS))
    assert 0.0 <= trained.metrics["macro_f1"] <= 1.0
    assert trained.metrics["cv_folds"] == 3
    for label in DOMAINS:
        assert set(trained.metrics["per_label"][label]) >= {"precision", "recall"}


def test_export_passed_the_parity_gate(trained):
    assert trained.parity.label_agreement == 1.0
    assert trained.parity.max_abs_diff <= 1e-4


def test_training_is_reproducible(examples, trained):
    texts, labels = examples
    assert train_text_classifier(texts, labels, seed=3, folds=3).sha256 == trained.sha256


def test_too_few_examples_names_the_labels_that_need_more():
    texts = [f"feedback number {i} tungkol sa klase" for i in range(26)]
    labels = ["Teaching"] * 12 + ["Facilities"] * 9 + ["Grading"] * 5
    with pytest.raises(InsufficientExamples) as info:
        train_text_classifier(texts, labels, seed=0)
    assert info.value.needs == {"Facilities": 9, "Grading": 5}
    assert "Facilities" in str(info.value)
    assert "Grading" in str(info.value)
    assert "Teaching" not in str(info.value)


def test_a_single_label_is_refused():
    with pytest.raises(ValueError, match="two labels"):
        train_text_classifier(["a b"] * 12, ["only"] * 12, seed=0)


def test_saved_model_serves_categories_beside_the_base_heads(trained, tmp_path, engine):
    path = tmp_path / "org-7-category.onnx"
    trained.save(path)
    model = load_category_model(path)
    assert model.labels == trained.labels
    assert model.sha256 == trained.sha256
    texts = ["Ang tagal ng pila sa registrar, tatlong oras kami naghintay.", "salamat po"]
    predictions = engine.predict(texts, category_model=model)
    expected = trained.pipeline.predict(list(map(_norm, texts)))
    assert [p.category for p in predictions] == list(expected)
    assert all(0.0 < (p.category_score or 0.0) <= 1.0 for p in predictions)
    assert predictions[0].model_versions["category"] == model.version


def test_category_model_loads_from_registry_bytes(trained, engine):
    model = load_category_model_bytes(trained.onnx_bytes, version="7:abcd1234")
    assert model.version == "7:abcd1234"
    assert model.path is None
    (prediction,) = engine.predict(["Ang bagal ng proseso sa munisipyo."], category_model=model)
    assert prediction.category in DOMAINS
    assert prediction.model_versions["category"] == "7:abcd1234"


def test_corrupt_bytes_are_a_model_error():
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_category_model_bytes(b"not onnx")


def test_loading_a_base_head_as_a_category_model_fails(tmp_path):
    from tests.inference.conftest import MODEL_DIR

    with pytest.raises(ModelError, match="category model"):
        load_category_model(MODEL_DIR / "sentiment.onnx")
    with pytest.raises(ModelError):
        load_category_model(tmp_path / "missing.onnx")


def _norm(text: str) -> str:
    from inference.text import normalize

    return normalize(text)
