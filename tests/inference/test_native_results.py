"""The compiled end of ``predict`` (``Results`` and ``normalize_batch`` in inference/_native.c)
gives exactly what the Python reference gives: ``runtime._predictions`` with
``AnomalyDetector.iter_results`` for the Predictions, ``runtime._validated_python`` for the
checks and normal forms (the same errors, naming the same index).

Predictions are compared with ``==`` on every field, so a score that differs in its last bit, a
dict in another order or a label picked differently on a tie fails.
"""

from __future__ import annotations

import csv
import math
import random
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import runtime
from inference.anomaly import screen as compiled_screen
from inference.anomaly.detector import Screened
from inference.native import compiled
from inference.runtime import Engine, Prediction
from inference.text import MAX_CHARS, normalize_python
from tests.inference import test_native_screen as screen_tests
from tests.inference.conftest import DATA_DIR, MODEL_DIR, all_texts, assert_no_leak, own_rows

VERSIONS = {"language": "l1", "sentiment": "s1"}
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 0.5, 0.49, 1.0, 1e-300, 5e-324]


@pytest.fixture(scope="module")
def loaded() -> Any:
    assert compiled is not None, "run `python -m inference.native_build`"
    loaded = Engine(MODEL_DIR)._load()
    assert loaded.results is not None
    return loaded


def python_predictions(
    loaded: Any,
    sentiment: np.ndarray,
    language: np.ndarray,
    scores: np.ndarray,
    screened: Screened,
    categories: list[tuple[str, float]] | None = None,
) -> list[Prediction]:
    anomalies = loaded.anomaly.iter_results(screened, scores)
    return runtime._predictions(
        loaded,
        sentiment_p=sentiment,
        language_p=language,
        anomalies=anomalies,
        categories=categories,
        versions=VERSIONS,
    )


def compiled_predictions(
    loaded: Any,
    sentiment: np.ndarray,
    language: np.ndarray,
    scores: np.ndarray,
    screened: Screened,
    categories: list[tuple[str, float]] | None = None,
) -> list[Prediction]:
    overrides = loaded.anomaly.python_results(screened, scores)
    built: list[Prediction] = loaded.results.build(
        sentiment, language, scores, screened.codes, overrides, categories, VERSIONS
    )
    return built


def assert_same(
    got: list[Prediction], expected: list[Prediction], versions: dict[str, str] | None = VERSIONS
) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert type(g) is Prediction
        # repr shows NaN and -0.0 apart (== on floats does not); dict order is part of it.
        assert repr(g) == repr(e)
        assert list(g.sentiment_scores) == list(e.sentiment_scores)
        if versions is not None:  # one dict for the whole batch, as the Python path shares it
            assert g.model_versions is versions


def corpus() -> list[str]:
    texts = all_texts()
    with (DATA_DIR / "anomaly_eval.csv").open(encoding="utf-8", newline="") as fh:
        texts += [row["text"] for row in csv.DictReader(fh)]
    return texts + screen_tests.SPECIAL_TEXTS


def test_the_whole_predict_equals_the_python_reference(loaded, monkeypatch):
    texts = [t for t in corpus() if normalize_python(t)]
    engine = Engine(MODEL_DIR)
    fast = engine.predict(texts)
    assert engine._load().fast is not None
    monkeypatch.setattr(engine._load(), "fast", None)  # _predict_chunk with Results.build
    compiled_general = engine.predict(texts)
    assert_same(compiled_general, fast, None)
    monkeypatch.setattr(engine._load(), "results", None)  # _predict_chunk with _predictions
    assert_same(engine.predict(texts), fast, None)
    assert len({id(p.model_versions) for p in fast}) == 1


def test_the_fast_path_takes_single_texts_and_org_categories_as_the_general_path(
    loaded, monkeypatch
):
    from inference.training.classifier import train_text_classifier

    per_domain: dict[str, int] = {}
    rows = []
    for row in own_rows():
        if per_domain.setdefault(row["domain"], 0) < 30:
            per_domain[row["domain"]] += 1
            rows.append(row)
    trained = train_text_classifier(
        [r["text"] for r in rows], [r["domain"] for r in rows], seed=3, folds=3
    )
    category = runtime.load_category_model_bytes(trained.onnx_bytes)
    engine = Engine(MODEL_DIR)
    texts = [
        "Ang galing po ng teacher namin",
        "visit bit.ly/x for free load",  # links and contacts: the screen hands these back
        "email me at a@b.co or 0917 123 4567",
        "SEND YOUR PASSWORD",
        "caf\u00e9 na maayo kaayo",
    ]
    fast = [engine.predict([t], category_model=category)[0] for t in texts]
    fast_batch = engine.predict(texts, category_model=category)
    monkeypatch.setattr(engine._load(), "fast", None)
    general = [engine.predict([t], category_model=category)[0] for t in texts]
    assert_same(fast, general, None)
    assert_same(fast_batch, engine.predict(texts, category_model=category), None)
    assert all(p.category is not None for p in fast)


def test_results_equal_the_reference_on_the_model_outputs(loaded):
    texts = [t for t in corpus() if normalize_python(t)]
    for batch in (texts, texts[:1], texts[5:6], texts[100:117]):
        feed = loaded.feed(runtime._validated(batch))
        screened = loaded.anomaly.prepare(batch, checked=True, max_chars=MAX_CHARS)
        feed["features"] = screened.features
        sentiment, language, scores = loaded.run(loaded.outputs, feed)
        assert_same(
            compiled_predictions(loaded, sentiment, language, scores, screened),
            python_predictions(loaded, sentiment, language, scores, screened),
        )


def synthetic(
    rng: random.Random, n: int, knots: tuple[float, ...] = (0.3, 0.45, 0.6)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Rows with ties, NaN, infinities and signed zeros; raw scores at, between and beyond the
    calibration knots; every verdict code with the NOTHING and LONG bits in every combination."""

    def value() -> float:
        return rng.choice([*SPECIAL_FLOATS, rng.random(), rng.choice([0.25, 0.75])])

    sentiment = np.array([[value() for _ in range(3)] for _ in range(n)], dtype=np.float64)
    language = np.array([[value() for _ in range(4)] for _ in range(n)], dtype=np.float64)
    raw = [
        rng.choice(
            [
                -rng.uniform(0.2, 0.9),
                -rng.choice(knots),
                rng.choice(SPECIAL_FLOATS),
                -rng.uniform(0.0, 2.0),
            ]
        )
        for _ in range(n)
    ]
    scores = np.array(raw, dtype=np.float32).reshape(n, 1)
    top = compiled_screen.MILD << 3  # every rule bit, MILD, NOTHING and LONG
    codes = [rng.randrange(top) for _ in range(n)]
    return sentiment, language, scores, codes


@pytest.mark.parametrize("seed", range(4))
def test_results_equal_the_reference_on_odd_numbers(loaded, seed):
    rng = random.Random(seed)
    for n in (1, 2, 17, 300):
        sentiment, language, scores, codes = synthetic(rng, n, loaded.anomaly._calibration.xs)
        screened = Screened(features=np.zeros((n, 18), np.float32), codes=codes, analyses={})
        categories = [(rng.choice(["Teaching", "Facilities"]), rng.random()) for _ in range(n)]
        for cats in (None, categories):
            assert_same(
                compiled_predictions(loaded, sentiment, language, scores, screened, cats),
                python_predictions(loaded, sentiment, language, scores, screened, cats),
            )


def test_texts_the_screen_hands_back_keep_their_python_results(loaded):
    texts = ["SEND YOUR PASSWORD", "visit bit.ly/x now", "p*ta ka", "ok po", "g a g o ka"]
    screened = loaded.anomaly.prepare(texts, checked=True, max_chars=MAX_CHARS)
    assert any(code < 0 for code in screened.codes)  # some took the Python path
    sentiment, language, scores, _ = synthetic(random.Random(9), len(texts))
    assert_same(
        compiled_predictions(loaded, sentiment, language, scores, screened),
        python_predictions(loaded, sentiment, language, scores, screened),
    )


def test_without_a_detector_every_text_gets_the_no_anomaly_fields(loaded):
    sentiment, language, _, _ = synthetic(random.Random(3), 5)
    got = loaded.results.build(sentiment, language, None, None, None, None, VERSIONS)
    expected = runtime._predictions(
        loaded,
        sentiment_p=sentiment,
        language_p=language,
        anomalies=[runtime._NO_ANOMALY] * 5,
        categories=None,
        versions=VERSIONS,
    )
    assert_same(got, expected)


@settings(max_examples=500, deadline=None, database=None)
@given(st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_one_raw_score_is_calibrated_and_rounded_as_in_python(loaded, raw):
    for code in (0, compiled_screen.LONG, 1, compiled_screen.MILD | compiled_screen.LONG):
        screened = Screened(features=np.zeros((1, 18), np.float32), codes=[code], analyses={})
        sentiment = np.array([[0.2, 0.3, 0.5]])
        language = np.array([[0.1, 0.2, 0.3, 0.4]])
        scores = np.array([[raw]], dtype=np.float32)
        assert_same(
            compiled_predictions(loaded, sentiment, language, scores, screened),
            python_predictions(loaded, sentiment, language, scores, screened),
        )


def test_build_checks_its_arguments(loaded):
    build = loaded.results.build
    good = (np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 1), np.float32), [0, 0])
    with pytest.raises(ValueError, match="sentiment"):
        build(np.zeros((2, 3), np.float32), *good[1:], None, None, VERSIONS)
    with pytest.raises(ValueError, match="language"):
        build(good[0], np.zeros((2, 3)), *good[2:], None, None, VERSIONS)
    with pytest.raises(ValueError, match="scores"):
        build(*good[:2], np.zeros((2, 1)), good[3], None, None, VERSIONS)
    with pytest.raises(ValueError, match="language"):
        build(good[0], np.zeros((4, 4))[::2], *good[2:], None, None, VERSIONS)
    with pytest.raises(TypeError, match="codes"):
        build(*good[:3], [0], None, None, VERSIONS)
    with pytest.raises(TypeError, match="categories"):
        build(*good, None, [("a", 1.0)], VERSIONS)
    with pytest.raises(ValueError, match="override"):
        build(*good[:3], [0, -1], None, None, VERSIONS)
    with pytest.raises(TypeError, match="NumPy"):
        build([[0.0] * 3] * 2, *good[1:], None, None, VERSIONS)


def test_build_does_not_leak(loaded):
    sentiment, language, scores, codes = synthetic(random.Random(5), 64)
    screened = Screened(features=np.zeros((64, 18), np.float32), codes=codes, analyses={})
    categories = [("Teaching", 0.5)] * 64

    def run() -> None:
        for _ in range(50):
            compiled_predictions(loaded, sentiment, language, scores, screened, categories)
            with pytest.raises(ValueError, match="override"):
                loaded.results.build(sentiment, language, scores, [-1] * 64, None, None, {})

    assert_no_leak(run)


BAD_BATCHES: list[Any] = [
    ("not a list",),
    (["ok", 5],),
    (["ok", None, ""],),
    (["ok po", ""],),
    (["ok po", "   "],),
    (["ok po", "\t\n"],),
    (["ok po", "\x00\x01\u200b"],),
    (["", 5],),
    ([b"bytes"],),
]


@pytest.mark.parametrize("args", BAD_BATCHES)
def test_the_compiled_checks_raise_what_the_python_checks_raise(args):
    (texts,) = args
    with pytest.raises((TypeError, ValueError)) as expected:
        runtime._validated_python(texts)
    with pytest.raises(expected.type, match=f"^{re.escape(str(expected.value))}$"):
        runtime._validated(texts)


def test_the_compiled_checks_give_the_python_normal_forms():
    texts = [t for t in corpus() if normalize_python(t)]
    texts += [
        "Visit WWW.EXAMPLE.COM now",
        "mail ME@x.org",
        "a/b",
        "sooooo gooood",
        "x" * (MAX_CHARS + 5) + " tail",
        "caf\u00e9 \u00bd",
    ]
    assert runtime._validated(texts) == runtime._validated_python(texts)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.text(max_size=30), max_size=6))
def test_hypothesis_batches_are_checked_and_normalised_alike(texts):
    try:
        expected = runtime._validated_python(texts)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            runtime._validated(texts)
    else:
        assert runtime._validated(texts) == expected


def test_the_feed_is_cut_where_the_python_path_cuts(loaded):
    long = "gago ka " * 1300 + "putang ina mo teacher"
    texts = [long, "x" * (MAX_CHARS + 3), "ok"]
    screened = loaded.anomaly.prepare(texts, checked=True, max_chars=MAX_CHARS)
    reference = loaded.anomaly.prepare([t[:MAX_CHARS] for t in texts], checked=True)
    assert screened.features.tobytes() == reference.features.tobytes()
    assert screened.codes == reference.codes
