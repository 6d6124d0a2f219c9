"""The sentiment head: negative / neutral / positive for en, tl (incl. Taglish), ceb (incl.
Bisaya-English), trained on the shared featurizer with languages balanced by sample weight."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.training.data import SENTIMENTS, Example, subsample
from inference.training.heads import HeadData, balanced_weights, evaluate_by_group

ENGLISH_CAP = 15_000
"""English training examples kept: the English corpora are ~100x our own, and more English
mostly grows the vocabulary (and model size) without helping tl/ceb."""


def sentiment_data(examples: Sequence[Example], *, seed: int) -> HeadData:
    """Training texts/labels/weights: English subsampled to :data:`ENGLISH_CAP` (stratified by
    label), every language weighted to the same total so tl and ceb count as much as en."""
    labelled = [e for e in examples if e.sentiment in SENTIMENTS]
    english = subsample([e for e in labelled if e.language == "en"], ENGLISH_CAP, seed=seed)
    chosen = english + [e for e in labelled if e.language != "en"]
    return HeadData(
        texts=[e.text for e in chosen],
        labels=[str(e.sentiment) for e in chosen],
        weights=balanced_weights([e.language for e in chosen]),
    )


def evaluate(pipeline: Any, test: Sequence[Example]) -> dict[str, Any]:
    """Held-out metrics overall, per language and per variety (macro-F1, per-label P/R)."""
    labelled = [e for e in test if e.sentiment in SENTIMENTS]
    return evaluate_by_group(
        pipeline,
        texts=[e.text for e in labelled],
        labels=[str(e.sentiment) for e in labelled],
        label_order=SENTIMENTS,
        groups={
            "language": [e.language for e in labelled],
            "variety": [e.variety for e in labelled],
        },
    )
