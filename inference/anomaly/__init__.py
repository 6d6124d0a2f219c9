"""Anomaly screening for feedback: transparent text statistics and rules plus an IsolationForest.

Pure runtime: no Django, no session opened at import time. The pieces:

* :func:`text_statistics` turns texts into a small float32 matrix of readable statistics (length,
  share of capitals, repeated tokens, URLs, ...). The IsolationForest (trained by
  ``inference.training.anomaly``) runs over it as one ONNX ``TreeEnsembleRegressor`` node.
* :func:`rule_reasons` applies transparent rules and lexicons that name *why* a text looks wrong
  (``spam_link``, ``contact_harvest``, ``gibberish``, ``repetition``, ``shouting``, ``abuse``).
* :class:`AnomalyDetector` combines both into an :class:`AnomalyResult`.

Modules: ``stats`` (one :class:`TextAnalysis` per text, shared by statistics and rules),
``lexicon`` (the ``abuse`` rule), ``rules`` (the other rules), ``detector`` (the combination),
``screen`` (the same statistics and rules compiled, ``inference/_native.c``: the detector's path
for almost every text when built; the Python modules stay the reference and the fallback, and
``tests/inference/test_native_screen.py`` checks both give the same rows and verdicts).

How the final score is combined (the contract callers rely on):

* the forest's raw anomaly ``a = -score_samples`` (in (0, 1)) is mapped to ``iso`` in [0, 1] by a
  piecewise-linear calibration stored in the model's metadata: ``iso = 0`` at the median of
  held-out normal feedback, ``0.5`` at the outlier line (a high quantile of held-out normal
  feedback), ``1`` at ``a = 1``;
* every rule that fires has a fixed weight (``RULE_WEIGHTS``, all >= 0.5); mild profanity that
  does not fire the ``abuse`` rule adds a floor of ``MILD_ABUSE_SCORE`` (< 0.5);
* ``score = max(iso, weights of fired rules, mild floor)``;
* ``reasons`` are the fired rules in ``REASONS`` order, or ``("outlier",)`` when no rule fired but
  ``iso >= 0.5`` on a text long enough for its statistics to mean something
  (``MIN_OUTLIER_CHARS``); a shorter text that no rule flags has its score capped at 0.49;
* ``flagged`` is ``bool(reasons)``, and ``flagged`` holds exactly when ``score >= 0.5``;
* a text with no visible character (empty, whitespace, control characters) scores 0, no reasons.
"""

from __future__ import annotations

from inference.anomaly.detector import (
    MILD_ABUSE_SCORE,
    MIN_OUTLIER_CHARS,
    AnomalyDetector,
    AnomalyResult,
    Calibration,
    Screened,
)
from inference.anomaly.lexicon import (
    LEXICON_PATH,
    SEVERITIES,
    AbuseLexicon,
    abuse_hits,
    abuse_level,
    build_lexicon,
    default_lexicon,
    read_lexicon,
)
from inference.anomaly.rules import REASONS, RULE_WEIGHTS, rule_reasons
from inference.anomaly.stats import (
    ANALYSIS_CHARS,
    FEATURE_NAMES,
    FEATURES_VERSION,
    TextAnalysis,
    analyse,
    clean_text,
    text_statistics,
)

__all__ = [
    "ANALYSIS_CHARS",
    "FEATURES_VERSION",
    "FEATURE_NAMES",
    "LEXICON_PATH",
    "MILD_ABUSE_SCORE",
    "MIN_OUTLIER_CHARS",
    "REASONS",
    "RULE_WEIGHTS",
    "SEVERITIES",
    "AbuseLexicon",
    "AnomalyDetector",
    "AnomalyResult",
    "Calibration",
    "Screened",
    "TextAnalysis",
    "abuse_hits",
    "abuse_level",
    "analyse",
    "build_lexicon",
    "clean_text",
    "default_lexicon",
    "read_lexicon",
    "rule_reasons",
    "text_statistics",
]
