"""Fixtures for the inference tests: the shipped models and small labelled data (no database)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from inference.runtime import Engine

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "onnx_models"
DATA_DIR = REPO / "inference" / "data"


def own_rows() -> list[dict[str, str]]:
    """Every row of our sentiment CSVs (text, sentiment, language, variety, domain)."""
    rows: list[dict[str, str]] = []
    for path in sorted(DATA_DIR.glob("sentiment_*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


def all_texts() -> list[str]:
    """All texts of inference/data (sentiment and language CSVs)."""
    texts = [r["text"] for r in own_rows()]
    with (DATA_DIR / "language_other.csv").open(encoding="utf-8", newline="") as fh:
        texts.extend(r["text"] for r in csv.DictReader(fh))
    return texts


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine(MODEL_DIR)
