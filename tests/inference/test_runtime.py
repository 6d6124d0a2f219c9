"""The serving API: predictions, input rules, lazy thread-safe loading, explanations."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inference.runtime import Engine, ModelError, Prediction, get_engine, reset_engines
from tests.inference.conftest import MODEL_DIR, REPO

EXAMPLES = {
    "Ang galing ng teacher namin, sobrang linaw magturo. Salamat po!": ("positive", "tl"),
    "Grabe ka hinay sa internet diri, kapoy kaayo mag-enroll.": ("negative", "ceb"),
    "The registrar lost my documents again and nobody answers the phone.": ("negative", "en"),
    "Le service était vraiment excellent, merci beaucoup.": (None, "other"),
}


def test_predict_returns_one_prediction_per_text_in_order(engine):
    texts = list(EXAMPLES)
    predictions = engine.predict(texts)
    assert len(predictions) == len(texts)
    for prediction, (sentiment, language) in zip(predictions, EXAMPLES.values(), strict=True):
        assert isinstance(prediction, Prediction)
        if sentiment is not None:
            assert prediction.sentiment == sentiment
        assert prediction.language == language


def test_scores_are_probabilities(engine):
    (p,) = engine.predict(["Okay lang naman po ang serbisyo."])
    assert set(p.sentiment_scores) == {"negative", "neutral", "positive"}
    assert math.isclose(sum(p.sentiment_scores.values()), 1.0, abs_tol=1e-9)
    assert p.sentiment == max(p.sentiment_scores, key=p.sentiment_scores.__getitem__)
    assert 0.0 < p.language_score <= 1.0
    assert 0.0 <= p.anomaly_score <= 1.0
    assert p.category is None
    assert p.category_score is None


def test_model_versions_name_every_base_model(engine):
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))
    (p,) = engine.predict(["salamat po"])
    assert p.model_versions == {t: m["version"] for t, m in manifest["models"].items()}


def test_spam_is_flagged_with_reasons(engine):
    (p,) = engine.predict(["FREE LOAD!!! click http://bit.ly/free-load now http://bit.ly/x"])
    assert p.flagged
    assert p.reasons


def test_non_string_is_a_type_error_naming_the_index(engine):
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        engine.predict(["ok", 5])
    with pytest.raises(TypeError, match="list of str"):
        engine.predict("not a list")


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "\x00\x01\u200b"])
def test_empty_text_is_a_value_error_naming_the_index(engine, bad):
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        engine.predict(["ok po", bad])


def test_long_and_odd_texts_get_a_defined_result(engine):
    texts = [
        "maayo kaayo " * 10_000,
        "a\x00b\x1b[31mred\x07 ganda",
        "!!!",
        "😡😡😡",
        "\ud800 lone surrogate",
    ]
    predictions = engine.predict(texts)
    assert len(predictions) == len(texts)
    assert all(p.sentiment in {"negative", "neutral", "positive"} for p in predictions)


def test_empty_batch_gives_no_predictions(engine):
    assert engine.predict([]) == []


def test_engine_opens_nothing_until_first_use():
    engine = Engine(MODEL_DIR)
    assert engine._loaded is None
    engine.predict(["salamat"])
    assert engine._loaded is not None


def test_concurrent_first_use_loads_once_and_agrees():
    engine = Engine(MODEL_DIR, threads=1)
    texts = list(EXAMPLES) * 5
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: engine.predict([t])[0], texts))
    assert results == engine.predict(texts)


def test_get_engine_is_cached_per_directory_until_reset():
    first = get_engine(MODEL_DIR)
    assert get_engine(MODEL_DIR) is first
    assert get_engine(MODEL_DIR, threads=2) is not first
    reset_engines()
    assert get_engine(MODEL_DIR) is not first


def test_tampered_model_file_is_refused(tmp_path: Path):
    copy = tmp_path / "models"
    shutil.copytree(MODEL_DIR, copy)
    path = copy / "sentiment.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        Engine(copy).predict(["salamat"])


def test_missing_manifest_is_a_model_error(tmp_path: Path):
    with pytest.raises(ModelError):
        Engine(tmp_path)


def test_explain_lists_terms_pushing_the_decision(engine):
    terms = engine.explain("Salamat po, ang galing ng teacher!", top=5)
    assert 0 < len(terms) <= 5
    weights = [w for _, w in terms]
    assert weights == sorted(weights, reverse=True)
    assert all(w > 0 for w in weights)
    assert any(term == "salamat" for term, _ in terms)


def test_runtime_import_pulls_in_neither_django_nor_onnxruntime():
    code = (
        "import sys, inference.runtime; "
        "bad = [m for m in ('django', 'onnxruntime', 'sklearn') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_merged_session_matches_each_model_run_alone(engine):
    import numpy as np
    import onnxruntime as ort

    from inference.anomaly import AnomalyDetector
    from inference.features import Featurizer
    from inference.text import normalize
    from tests.inference.conftest import all_texts

    texts = [*all_texts()[:200], *EXAMPLES]
    predictions = engine.predict(texts)
    featurizer = Featurizer.from_json((MODEL_DIR / "featurizer.json").read_bytes())
    rows = featurizer.transform([normalize(t) for t in texts])
    feed = {
        "rows": rows.rows,
        "cols": rows.cols,
        "vals": rows.vals,
        "n_rows": np.array([rows.n_rows], dtype=np.int64),
    }
    for task in ("sentiment", "language"):
        session = ort.InferenceSession(str(MODEL_DIR / f"{task}.onnx"))
        (proba,) = session.run(["probabilities"], feed)
        labels = json.loads(session.get_modelmeta().custom_metadata_map["puna.labels"])
        for p, row in zip(predictions, proba.tolist(), strict=True):
            if task == "sentiment":
                assert [p.sentiment_scores[label] for label in labels] == row
            else:
                assert p.language_score == max(row)
                assert p.language == labels[row.index(max(row))]
    alone = AnomalyDetector.load(MODEL_DIR / "anomaly.onnx").score(texts)
    assert [(p.anomaly_score, p.flagged, p.reasons) for p in predictions] == [
        (r.score, r.flagged, r.reasons) for r in alone
    ]


def test_predictions_are_the_same_without_the_compiled_loops(engine, monkeypatch):
    import inference.features
    import inference.runtime
    import inference.text
    from tests.inference.conftest import all_texts

    texts = [*all_texts()[:400], *EXAMPLES, "SEND YOUR PASSWORD", "visit bit.ly/x", "gago ka"]
    compiled_predictions = engine.predict(texts)
    python_engine = Engine(MODEL_DIR)
    loaded = python_engine._load()
    # The Python paths: normalize_python and the Python checks, the Python featurizer (rows
    # reshaped for the stacked heads), analyse + rules, session.run.
    monkeypatch.setattr(inference.text, "compiled", None)
    monkeypatch.setattr(inference.runtime, "compiled", None)
    monkeypatch.setattr(loaded.featurizer, "_native", None)
    monkeypatch.setattr(loaded.feed, "_native_feed", None)
    monkeypatch.setattr(loaded, "results", None)
    monkeypatch.setattr(loaded, "fast", None)
    loaded.anomaly._screen, loaded.anomaly._screen_built = None, True
    monkeypatch.setattr(loaded, "run", loaded.session.run)
    assert python_engine.predict(texts) == compiled_predictions
    assert inference.features.NATIVE_AVAILABLE


def test_the_direct_session_call_equals_session_run(engine):
    import numpy as np

    loaded = engine._load()
    feed = loaded.feed(["ok po", "grabe ang tagal"])
    feed["features"] = np.zeros((2, 18), dtype=np.float32)
    direct = loaded.run(loaded.outputs, feed)
    checked = loaded.session.run(loaded.outputs, feed)
    assert all(np.array_equal(a, b) for a, b in zip(direct, checked, strict=True))


def test_a_batch_in_chunks_equals_the_batch_in_one_run(engine, monkeypatch):
    import inference.runtime
    from tests.inference.conftest import all_texts

    texts = all_texts()[:1000]
    monkeypatch.setattr(inference.runtime, "PREDICT_CHUNK", 10**9)
    whole = engine.predict(texts)
    # ONNX Runtime's Softmax is vectorised over the flattened batch, so a row's last bits can
    # depend on its position modulo the vector width; chunks of a multiple of 64 rows keep every
    # position's residue (the whole range of a chunk, and the short last chunk).
    monkeypatch.setattr(inference.runtime, "PREDICT_CHUNK", 64)
    chunked = engine.predict(texts)
    assert chunked == whole
    assert inference.runtime.PREDICT_CHUNK % 64 == 0
    # One model_versions dict for the whole call, as without chunks.
    assert len({id(p.model_versions) for p in chunked}) == 1


def test_the_small_batch_argmax_is_numpys():
    import numpy as np

    from inference.runtime import _argmax

    rng = np.random.default_rng(0)
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.0]
    for _ in range(5000):
        row = rng.choice([*specials, *rng.random(3)], size=rng.integers(1, 6))
        assert _argmax(row.tolist()) == int(np.argmax(row)), row
