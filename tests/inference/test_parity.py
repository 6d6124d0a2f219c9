"""Exports agree with scikit-learn; the shipped files are the ones the manifest describes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import scipy.sparse as sp
from onnx import numpy_helper
from sklearn.pipeline import Pipeline

from inference.features import Featurizer
from inference.text import normalize
from inference.training.classifier import featurizer_from_union, fit_logistic, make_vectorizer
from inference.training.export import (
    PARITY_MAX_ABS_DIFF,
    ParityError,
    SparseLinearHead,
    export_head,
    parity_gate,
    run_head,
)
from tests.inference.conftest import MODEL_DIR, all_texts, own_rows


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def small_pipeline():
    rows = own_rows()[::3]
    texts = [normalize(r["text"]) for r in rows]
    labels = [r["sentiment"] for r in rows]
    union = make_vectorizer().fit(texts)
    clf = fit_logistic(union.transform(texts), labels, seed=0)
    return Pipeline([("features", union), ("clf", clf)]), [r["text"] for r in rows]


def test_manifest_sha256_matches_every_shipped_file(manifest):
    entries = [manifest["featurizer"], *manifest["models"].values()]
    for entry in entries:
        data = (MODEL_DIR / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]


def test_shipped_models_passed_the_parity_gate(manifest):
    for task in ("sentiment", "language"):
        parity = manifest["models"][task]["parity"]
        assert parity["label_agreement"] == 1.0
        assert parity["max_abs_diff"] <= PARITY_MAX_ABS_DIFF
        assert parity["n_texts"] > 1000


def test_shipped_models_are_small(manifest):
    for entry in manifest["models"].values():
        assert (MODEL_DIR / entry["file"]).stat().st_size <= 20 * 1024 * 1024


@pytest.mark.parametrize("task", ["sentiment", "language"])
def test_shipped_head_equals_softmax_of_its_weights(task, manifest):
    # The graph must compute exactly softmax(x W + b): checked against NumPy on all our texts.
    raw = (MODEL_DIR / manifest["models"][task]["file"]).read_bytes()
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(raw).graph.initializer}
    featurizer = Featurizer.from_json((MODEL_DIR / "featurizer.json").read_bytes())
    rows = featurizer.transform([normalize(t) for t in all_texts()])
    labels, proba = run_head(ort.InferenceSession(raw, providers=["CPUExecutionProvider"]), rows)
    matrix = sp.csr_matrix((rows.vals, (rows.rows, rows.cols)), shape=(rows.n_rows, rows.n_cols))
    logits = matrix @ inits["W"] + inits["b"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.max(np.abs(proba - expected)) <= 1e-12
    classes = manifest["models"][task]["labels"]
    assert labels.tolist() == [classes[i] for i in expected.argmax(axis=1)]


def test_export_passes_the_gate_against_sklearn(small_pipeline):
    pipeline, texts = small_pipeline
    featurizer = featurizer_from_union(pipeline.named_steps["features"])
    head = SparseLinearHead.from_logistic(pipeline.named_steps["clf"])
    model = export_head(head, metadata={"puna.labels": json.dumps(list(head.classes))})
    report = parity_gate(model, featurizer, pipeline, texts)
    assert report.label_agreement == 1.0
    assert report.max_abs_diff <= 1e-12


def test_gate_rejects_an_export_that_drifts(small_pipeline):
    pipeline, texts = small_pipeline
    featurizer = featurizer_from_union(pipeline.named_steps["features"])
    head = SparseLinearHead.from_logistic(pipeline.named_steps["clf"])
    drifted = SparseLinearHead(
        coef=head.coef * 1.01, intercept=head.intercept, classes=head.classes
    )
    model = export_head(drifted, metadata={"puna.labels": json.dumps(list(head.classes))})
    with pytest.raises(ParityError, match="rejected"):
        parity_gate(model, featurizer, pipeline, texts)


def test_export_is_byte_for_byte_reproducible(small_pipeline):
    pipeline, _ = small_pipeline
    head = SparseLinearHead.from_logistic(pipeline.named_steps["clf"])
    meta = {"puna.labels": json.dumps(list(head.classes)), "b": "2", "a": "1"}
    assert export_head(head, metadata=meta) == export_head(
        head, metadata=dict(reversed(meta.items()))
    )
