"""Shared helpers for the base heads: training sets, language balancing, grouped evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.text import normalize
from inference.training.classifier import classification_metrics


@dataclass(frozen=True)
class HeadData:
    """Raw texts, labels and per-example sample weights for one head."""

    texts: list[str]
    labels: list[str]
    weights: npt.NDArray[np.float64]


def balanced_weights(groups: Sequence[str]) -> npt.NDArray[np.float64]:
    """Weights giving each group the same total weight, with mean 1 over all examples."""
    counts = Counter(groups)
    per_group = len(groups) / len(counts)
    return np.array([per_group / counts[g] for g in groups], dtype=np.float64)


def evaluate_by_group(
    pipeline: Any,
    *,
    texts: Sequence[str],
    labels: Sequence[str],
    label_order: Sequence[str],
    groups: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """Metrics on all ``texts`` and, for each grouping, on each group's subset."""
    predicted = [str(p) for p in pipeline.predict([normalize(t) for t in texts])]
    out: dict[str, Any] = {"overall": classification_metrics(labels, predicted, label_order)}
    for grouping, values in groups.items():
        out[f"by_{grouping}"] = {
            group: classification_metrics(
                [labels[i] for i in idx],
                [predicted[i] for i in idx],
                [lab for lab in label_order if any(labels[i] == lab for i in idx)],
            )
            for group in sorted(set(values))
            for idx in [[i for i, v in enumerate(values) if v == group]]
        }
    return out
