"""Reusable text classifier training: TF-IDF (word + char n-grams) + LogisticRegression.

Used for the base sentiment and language heads (with a shared featurizer) and, through
:func:`train_text_classifier`, for each org's own categories: cross-validated metrics, an ONNX
export that carries its own featurizer in ``metadata_props`` (one self-contained file), and the
parity gate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from inference.features import TOKEN_PATTERN, Featurizer, NGramSpec
from inference.text import normalize
from inference.training.export import (
    ParityReport,
    SparseLinearHead,
    export_head,
    parity_gate,
    sha256_bytes,
)

DEFAULT_SPEC = NGramSpec(word=(1, 2), char=(3, 3))
DEFAULT_MIN_EXAMPLES = 10
CATEGORY_FORMAT = "puna.category/1"


class InsufficientExamples(ValueError):
    """Some labels have fewer examples than training needs; ``needs`` maps label -> count."""

    def __init__(self, needs: Mapping[str, int], minimum: int) -> None:
        self.needs = dict(sorted(needs.items()))
        self.minimum = minimum
        listed = ", ".join(f"{label!r} ({n})" for label, n in self.needs.items())
        super().__init__(f"each label needs at least {minimum} examples; these need more: {listed}")


def make_vectorizer(spec: NGramSpec = DEFAULT_SPEC, *, min_df: int = 2) -> FeatureUnion:
    """The scikit-learn featurizer that :class:`inference.features.Featurizer` reproduces.

    Settings are the ones that also export exactly to skl2onnx's string graph: input already
    normalised (so ``lowercase=False``), no accent stripping, raw tf (no sublinear_tf), min_df
    instead of max_features, word tokens ``\\w{2,}`` and plain ``char`` n-grams.
    """
    word = TfidfVectorizer(
        lowercase=False,
        token_pattern=TOKEN_PATTERN,
        ngram_range=spec.word,
        min_df=min_df,
        dtype=np.float64,
    )
    char = TfidfVectorizer(
        lowercase=False, analyzer="char", ngram_range=spec.char, min_df=min_df, dtype=np.float64
    )
    return FeatureUnion([("word", word), ("char", char)])


def featurizer_from_union(union: FeatureUnion) -> Featurizer:
    """The pure-Python twin of a fitted :func:`make_vectorizer` union."""
    parts = dict(union.transformer_list)
    return Featurizer.from_vectorizers(parts["word"], parts["char"])


def fit_logistic(
    features: Any,
    labels: Sequence[str],
    *,
    seed: int,
    c: float = 10.0,
    sample_weight: npt.NDArray[np.float64] | None = None,
) -> LogisticRegression:
    """A multinomial LogisticRegression (probabilities sum to 1), deterministic for a seed."""
    model = LogisticRegression(C=c, max_iter=2000, tol=1e-4, random_state=seed)
    model.fit(features, list(labels), sample_weight=sample_weight)
    return model


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Macro-F1, accuracy and per-label precision/recall/F1/support (JSON-ready)."""
    precision, recall, f1, support = precision_recall_fscore_support(
        list(y_true), list(y_pred), labels=list(labels), zero_division=0
    )
    return {
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=list(labels), average="macro")), 4),
        "accuracy": round(float(np.mean(np.array(y_true) == np.array(y_pred))), 4),
        "n": len(y_true),
        "per_label": {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
    }


@dataclass(frozen=True)
class TrainedClassifier:
    """An org classifier ready to register: ONNX bytes (self-contained), labels, CV metrics."""

    onnx_bytes: bytes
    sha256: str
    labels: tuple[str, ...]
    metrics: dict[str, Any]
    parity: ParityReport
    pipeline: Pipeline = field(repr=False)

    def save(self, path: Path) -> None:
        """Write the ONNX file (load it with ``inference.runtime.load_category_model``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.onnx_bytes)


def train_text_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    seed: int,
    min_examples: int = DEFAULT_MIN_EXAMPLES,
    folds: int = 5,
    spec: NGramSpec = DEFAULT_SPEC,
) -> TrainedClassifier:
    """Train, cross-validate, export and parity-check a classifier for ``labels``.

    Contract: raises ``ValueError`` if lengths differ, a text is empty after normalisation or
    fewer than two labels are given; raises :class:`InsufficientExamples` naming every label with
    fewer than ``min_examples`` examples; raises ``ParityError`` if the export disagrees with
    scikit-learn. Metrics are stratified ``folds``-fold cross-validated (macro-F1, per-label
    precision/recall); the final model is fit on all examples. Deterministic for a seed.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    normalised = [normalize(t) for t in texts]
    empty = [i for i, t in enumerate(normalised) if not t]
    if empty:
        raise ValueError(f"texts at indexes {empty[:10]} are empty after normalisation")
    counts = Counter(str(label) for label in labels)
    if len(counts) < 2:
        raise ValueError("a classifier needs at least two labels")
    needs = {label: n for label, n in counts.items() if n < min_examples}
    if needs:
        raise InsufficientExamples(needs, min_examples)
    y = [str(label) for label in labels]
    label_order = tuple(sorted(counts))
    # Small org data sets: keep every n-gram seen twice, and all words.
    min_df = 2 if len(texts) >= 200 else 1

    n_folds = min(folds, *counts.values())
    predicted = np.empty(len(y), dtype=object)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(normalised, y):
        fold_pipeline = _fit_pipeline(
            [normalised[i] for i in train_idx], [y[i] for i in train_idx], spec, min_df, seed
        )
        predicted[test_idx] = fold_pipeline.predict([normalised[i] for i in test_idx])
    metrics = classification_metrics(y, list(predicted), label_order)
    metrics["cv_folds"] = n_folds

    pipeline = _fit_pipeline(normalised, y, spec, min_df, seed)
    featurizer = featurizer_from_union(pipeline.named_steps["features"])
    head = SparseLinearHead.from_logistic(pipeline.named_steps["clf"])
    model_bytes = export_head(
        head,
        metadata={
            "puna.format": CATEGORY_FORMAT,
            "puna.task": "category",
            "puna.labels": json.dumps(list(head.classes)),
            "puna.featurizer": featurizer.to_json(),
            "puna.metrics": json.dumps(metrics, sort_keys=True),
        },
    )
    parity = parity_gate(model_bytes, featurizer, pipeline, list(texts))
    return TrainedClassifier(
        onnx_bytes=model_bytes,
        sha256=sha256_bytes(model_bytes),
        labels=head.classes,
        metrics=metrics,
        parity=parity,
        pipeline=pipeline,
    )


def _fit_pipeline(
    texts: Sequence[str], labels: Sequence[str], spec: NGramSpec, min_df: int, seed: int
) -> Pipeline:
    union = make_vectorizer(spec, min_df=min_df)
    features = union.fit_transform(list(texts))
    clf = fit_logistic(features, labels, seed=seed)
    return Pipeline([("features", union), ("clf", clf)])
