"""Fixtures for the inference tests: the shipped models and small labelled data (no database)."""

from __future__ import annotations

import csv
import gc
import tracemalloc
from collections.abc import Callable
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


def assert_no_leak(run: Callable[[], None], *, limit: int = 64 * 1024) -> None:
    """Run ``run`` once to warm up, then five times more: traced memory may not grow by ``limit``
    bytes (a reference leaked per call in the compiled code would)."""
    run()
    gc.collect()
    tracemalloc.start()
    try:
        run()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            run()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < limit


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine(MODEL_DIR)
