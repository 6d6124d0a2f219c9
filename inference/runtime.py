"""Serving: sentiment, language, an org's category and anomaly for a batch of texts.

Pure by design (no Django, no database): the registry hands this module a model directory and,
per org, a category model file. Each text is normalised, featurized and screened for anomalies
once (by the compiled loops when built, see ``inference.native``); the sparse rows are shared by
every head built on the same featurizer, and ONNX Runtime does the model maths. With the compiled
module, the texts are checked and normalised, the heads' inputs built and the Predictions made
from the session's outputs in C too (``normalize_batch``, ``FeatureIndex.feed``, ``Results``);
the Python paths here (:func:`_validated_python`, :func:`_predictions`) are the reference, and
``tests/inference/test_native_results.py`` holds the two to the same results. At load time the
sentiment and language heads are stacked into one head and merged with the anomaly forest into
one graph, so a batch costs one ``session.run`` (see :func:`_assemble`; batches larger than
:data:`PREDICT_CHUNK` run in chunks, with the same results). ONNX sessions open lazily on first
use (never at import), once per :class:`Engine`, under a lock, with explicit thread counts.

Inputs: ``predict`` takes a list of ``str``. A non-string raises ``TypeError`` and an empty or
whitespace-only text (also one made only of control characters) raises ``ValueError``, both
naming the index; the whole batch is rejected before any model runs. Only the first
``inference.text.MAX_CHARS`` (10,000) characters of a text are featurized and screened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from inference.anomaly import AnomalyDetector, AnomalyResult
from inference.features import Featurizer, SparseRows
from inference.graphs import GraphError, fuse_linear_heads, merge_models
from inference.native import compiled
from inference.text import MAX_CHARS, normalize, normalize_python

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "puna.manifest/1"
CATEGORY_FORMAT = "puna.category/1"

logger = logging.getLogger(__name__)


class Prediction(NamedTuple):
    """Everything Puna infers about one text. Scores are probabilities in [0, 1];
    ``sentiment_scores`` sums to 1; ``category*`` are None when no org model was given.

    (A NamedTuple: one is built per text on the hot path, where a frozen dataclass's
    per-field ``object.__setattr__`` shows.)"""

    sentiment: str
    sentiment_scores: dict[str, float]
    language: str
    language_score: float
    category: str | None
    category_score: float | None
    anomaly_score: float
    flagged: bool
    reasons: tuple[str, ...]
    model_versions: dict[str, str]


class ModelError(RuntimeError):
    """A model file is missing, corrupt (sha256 mismatch) or of an unknown format."""


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def _open_session(model: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(
        model, sess_options=_session_options(threads), providers=["CPUExecutionProvider"]
    )


_Runner = Callable[[list[str], dict[str, Any]], list[Any]]


def _runner(session: Any) -> _Runner:
    """``session.run`` for the runtime's own feeds, without the per-call Python checks.

    ``InferenceSession.run`` checks that every graph input is fed and that OrtValue inputs belong
    to the session, then calls the compiled session (``_sess.run``); on a CPU-only session it has
    no provider to fall back to. The runtime feeds every input as a NumPy array on the CPU
    provider, so those checks cannot fail and the direct call runs the same graph on the same
    inputs (a few microseconds less for one text). Other session objects keep their ``run``.
    """
    inner = getattr(session, "_sess", None)
    if inner is None or session.get_providers() != ["CPUExecutionProvider"]:
        run: _Runner = session.run
        return run
    inner_run = inner.run

    def run_direct(output_names: list[str], feed: dict[str, Any]) -> list[Any]:
        result: list[Any] = inner_run(output_names, feed, None)
        return result

    return run_direct


_PROBABILITIES = ["probabilities"]
_NO_ANOMALY = AnomalyResult(score=0.0, flagged=False, reasons=())


def _metadata(raw: bytes) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load_from_string(raw).metadata_props}


def _n_rows_array(n: int) -> npt.NDArray[np.int64]:
    array = np.array([n], dtype=np.int64)
    array.flags.writeable = False
    return array


# The graph's n_rows input for the common small batches, built once (read-only, so shareable).
_N_ROWS = tuple(_n_rows_array(n) for n in range(65))


def _sparse_feed(rows: SparseRows) -> dict[str, Any]:
    n = rows.n_rows
    return {
        "rows": rows.rows,
        "cols": rows.cols,
        "vals": rows.vals,
        "n_rows": _N_ROWS[n] if n < len(_N_ROWS) else _n_rows_array(n),
    }


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


class _Feeder:
    """The heads' inputs for a batch of normalised texts, in the layout the session takes: the
    stacked heads' (:func:`inference.graphs.fuse_linear_heads`) or the exported heads'
    (:func:`_sparse_feed`). With the compiled featurizer the stacked heads' arrays come from C as
    they are fed (``FeatureIndex.feed``); otherwise from :meth:`Featurizer.transform`."""

    def __init__(self, featurizer: Featurizer, *, stacked: bool, width: int) -> None:
        self.featurizer = featurizer
        self.stacked = stacked
        self.width = width
        native = featurizer._native if stacked else None
        self._native_feed = None if native is None else native.feed
        # The scatter's all-zero start for the common small batches, built once (read-only, so
        # shareable between threads and calls).
        self._zeros = tuple(_read_only(np.zeros((n, width))) for n in range(65))

    def zeros(self, n: int) -> npt.NDArray[np.float64]:
        return self._zeros[n] if n < len(self._zeros) else np.zeros((n, self.width))

    def __call__(self, normalised: list[str]) -> dict[str, Any]:
        native_feed = self._native_feed
        if native_feed is not None:
            rows, cols, vals = native_feed(normalised)
            return {"rows": rows, "cols": cols, "vals": vals, "zeros": self.zeros(len(normalised))}
        return self.from_rows(self.featurizer.transform(normalised))

    def from_rows(self, rows: SparseRows) -> dict[str, Any]:
        if not self.stacked:
            return _sparse_feed(rows)
        return {
            "rows": rows.rows.reshape(-1, 1),
            "cols": rows.cols,
            "vals": rows.vals.reshape(-1, 1),
            "zeros": self.zeros(rows.n_rows),
        }


class _Head:
    """One exported linear head (``inference.training.export``) and its label order."""

    def __init__(self, session: Any, labels: Sequence[str]) -> None:
        self.session = session
        self.labels = tuple(labels)

    def run(self, rows: SparseRows) -> tuple[list[int], npt.NDArray[np.float64]]:
        """(index of the best label, probabilities [n, K]) for each row."""
        (proba,) = self.session.run(_PROBABILITIES, _sparse_feed(rows))
        # ArgMax over probabilities equals ArgMax over logits (softmax is monotonic); ties
        # resolve to the first label, as in the graph and scikit-learn.
        return proba.argmax(axis=1).tolist(), proba


@dataclass(frozen=True)
class CategoryModel:
    """An org's own classifier: one self-contained ONNX file (featurizer in its metadata)."""

    path: Path | None
    sha256: str
    version: str
    labels: tuple[str, ...]
    featurizer: Featurizer = field(repr=False)
    head: _Head = field(repr=False)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(label, probability) per text: the same categories ``Engine.predict`` gives with
        this model, without the base heads (e.g. to categorise stored feedback again). The
        same input rules (and errors) as ``Engine.predict``."""
        normalised = _validated(texts)
        return _categories(self, normalised) if normalised else []


def load_category_model(path: Path, threads: int = 1) -> CategoryModel:
    """Load a file written by ``TrainedClassifier.save``.

    Contract: raises ``ModelError`` if the file is missing or not a Puna category model; the
    version is ``category-<first 12 hex of sha256>``.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read category model {path}: {exc}") from exc
    return load_category_model_bytes(raw, threads=threads, path=Path(path))


def load_category_model_bytes(
    raw: bytes, *, version: str | None = None, threads: int = 1, path: Path | None = None
) -> CategoryModel:
    """Load a category model from its bytes (``TrainedClassifier.onnx_bytes``, e.g. a
    registry row); ``version`` defaults to ``category-<first 12 hex of sha256>``.

    Contract: raises ``ModelError`` if ``raw`` is not a Puna category model.
    """
    where = str(path) if path is not None else "category model bytes"
    try:
        session = _open_session(raw, threads)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelError(f"{where} is not a valid ONNX model: {exc}") from exc
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("puna.format") != CATEGORY_FORMAT:
        raise ModelError(f"{where} is not a Puna category model ({CATEGORY_FORMAT})")
    sha = hashlib.sha256(raw).hexdigest()
    labels = tuple(json.loads(meta["puna.labels"]))
    return CategoryModel(
        path=path,
        sha256=sha,
        version=version or f"category-{sha[:12]}",
        labels=labels,
        featurizer=Featurizer.from_json(meta["puna.featurizer"]),
        head=_Head(session, labels),
    )


@dataclass
class _Loaded:
    featurizer: Featurizer
    session: Any  # every base model in one graph (see _assemble)
    outputs: list[str]  # sentiment and language probabilities, then the forest's scores if any
    sentiment_labels: tuple[str, ...]
    language_labels: tuple[str, ...]
    anomaly: Any  # inference.anomaly.AnomalyDetector, or None when the manifest has none
    versions: dict[str, str]
    fused: bool  # whether the heads run as one stacked head (fuse_linear_heads)
    run: _Runner  # session.run (see _runner)
    feed: _Feeder
    results: Any  # inference._native.Results, or None without the compiled module
    fast: _Fast | None  # the compiled path when every piece of it is there (see _predict_fast)

    def run_heads(self, rows: SparseRows, tasks: Sequence[str]) -> list[Any]:
        """Probabilities of the heads ``tasks`` ("sentiment", "language") for ``rows``; the
        forest gets zero rows."""
        feed = self.feed.from_rows(rows)
        if self.anomaly is not None:
            feed[self.anomaly.input_name] = self.anomaly.empty_features()
        names = {"sentiment": self.outputs[0], "language": self.outputs[1]}
        return self.run([names[t] for t in tasks], feed)


def _assemble(
    heads: Sequence[tuple[str, bytes]], anomaly: tuple[bytes, AnomalyDetector] | None, threads: int
) -> tuple[Any, list[str], bool]:
    """(session, output names, stacked) for the base models in one graph.

    The heads are stacked into one (:func:`inference.graphs.fuse_linear_heads`; bit-identical
    outputs, checked over the corpus by ``tests/inference/test_graphs.py``) and merged with the
    forest. Heads that cannot be stacked are merged as exported (:func:`merge_models`).
    Raises ``ModelError`` when no graph can be built.
    """
    forest: list[tuple[str, bytes, Sequence[str]]] = []
    forest_out: list[str] = []
    if anomaly is not None:
        raw, detector = anomaly
        forest = [("anomaly", raw, [detector.output_name])]
        forest_out = [f"anomaly/{detector.output_name}"]
    head_outputs = [f"{task}/probabilities" for task, _ in heads]
    try:
        stacked = fuse_linear_heads(heads)
    except GraphError as exc:
        logger.warning("running the base heads as exported: %s", exc)
    else:
        graph = merge_models([("heads", stacked, head_outputs), *forest])
        return (
            _open_session(graph, threads),
            [f"heads/{n}" for n in head_outputs] + forest_out,
            True,
        )
    try:
        graph = merge_models([(t, raw, _PROBABILITIES) for t, raw in heads] + forest)
    except GraphError as exc:
        raise ModelError(str(exc)) from exc
    return _open_session(graph, threads), head_outputs + forest_out, False


class Engine:
    """The base models of one model directory (``manifest.json``), loaded lazily, thread-safe.

    Contract: construction only reads and checks the manifest; the first ``predict``/``explain``
    loads every file once (verifying sha256) and later calls reuse them. ``threads`` sets
    onnxruntime's intra- and inter-op thread counts (1 in web workers).
    """

    def __init__(self, model_dir: Path, *, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.model_dir = Path(model_dir)
        self.threads = threads
        manifest_path = self.model_dir / MANIFEST_FILE
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {manifest_path}: {exc}") from exc
        if self.manifest.get("format") != MANIFEST_FORMAT:
            raise ModelError(f"{manifest_path} is not a {MANIFEST_FORMAT} manifest")
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._explain_weights: npt.NDArray[np.float64] | None = None

    @property
    def model_versions(self) -> dict[str, str]:
        """Task -> version string of the base models, as listed in the manifest."""
        return {task: str(m["version"]) for task, m in sorted(self.manifest["models"].items())}

    def _read_verified(self, entry: dict[str, Any]) -> bytes:
        path = self.model_dir / entry["file"]
        try:
            raw: bytes = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc}") from exc
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise ModelError(f"{path} does not match the sha256 in the manifest")
        return raw

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                models = self.manifest["models"]
                featurizer = Featurizer.from_json(self._read_verified(self.manifest["featurizer"]))
                heads: list[tuple[str, bytes]] = []
                labels: dict[str, tuple[str, ...]] = {}
                for task in ("sentiment", "language"):
                    raw = self._read_verified(models[task])
                    meta = _metadata(raw)
                    if meta.get("puna.featurizer_sha256") != self.manifest["featurizer"]["sha256"]:
                        raise ModelError(f"{task} was exported for a different featurizer")
                    labels[task] = tuple(json.loads(meta["puna.labels"]))
                    heads.append((task, raw))
                anomaly = None
                forest: tuple[bytes, AnomalyDetector] | None = None
                if "anomaly" in models:
                    raw = self._read_verified(models["anomaly"])
                    anomaly = AnomalyDetector.from_metadata(
                        self.model_dir / models["anomaly"]["file"],
                        _metadata(raw),
                        threads=self.threads,
                    )
                    forest = (raw, anomaly)
                try:
                    session, outputs, fused = _assemble(heads, forest, self.threads)
                except ModelError:
                    raise
                except Exception as exc:  # onnxruntime raises its own types for bad graphs
                    raise ModelError(f"cannot load the models in {self.model_dir}: {exc}") from exc
                self._loaded = _Loaded(
                    featurizer=featurizer,
                    session=session,
                    outputs=outputs,
                    sentiment_labels=labels["sentiment"],
                    language_labels=labels["language"],
                    anomaly=anomaly,
                    versions=self.model_versions,
                    fused=fused,
                    run=_runner(session),
                    feed=_Feeder(
                        featurizer,
                        stacked=fused,
                        width=len(labels["sentiment"]) + len(labels["language"]),
                    ),
                    results=_compiled_results(labels, anomaly),
                    fast=None,
                )
                self._loaded.fast = _fast_path(self._loaded)
            return self._loaded

    def warm_up(self) -> None:
        """Load every model now (e.g. at worker start) instead of on the first request."""
        self.predict(["warm up"])

    def predict(
        self, texts: list[str], *, category_model: CategoryModel | None = None
    ) -> list[Prediction]:
        """One :class:`Prediction` per text, in order (see the module docstring for input rules)."""
        normalised = _validated(texts)
        if not normalised:
            return []
        loaded = self._load()
        versions = dict(loaded.versions)
        if category_model is not None:
            versions["category"] = category_model.version
        if len(texts) <= PREDICT_CHUNK:
            if loaded.fast is not None:
                return _predict_fast(loaded.fast, texts, normalised, category_model, versions)
            return _predict_chunk(loaded, texts, normalised, category_model, versions)
        # Every step is row by row (the featurizer, the heads' scatter-add, the forest; the
        # Softmax as PREDICT_CHUNK explains), so a chunk's rows equal the whole batch's. Chunks
        # keep the sparse rows in the CPU caches (a 10,000-text batch has ~70 MB of them).
        predictions: list[Prediction] = []
        for start in range(0, len(texts), PREDICT_CHUNK):
            end = start + PREDICT_CHUNK
            chunk, chunk_normalised = texts[start:end], normalised[start:end]
            predictions += (
                _predict_fast(loaded.fast, chunk, chunk_normalised, category_model, versions)
                if loaded.fast is not None
                else _predict_chunk(loaded, chunk, chunk_normalised, category_model, versions)
            )
        return predictions

    def explain(self, text: str, *, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` features pushing the sentiment decision for ``text``, strongest first.

        Each weight is the feature's TF-IDF value times the predicted class's coefficient; only
        positive contributions are returned. Word n-grams are returned as written (after
        normalisation), char n-grams as ``char:<gram>``. Same input rules as ``predict``.
        """
        (normalised,) = _validated([text])
        loaded = self._load()
        weights = self._sentiment_weights()
        rows = loaded.featurizer.transform([normalised])
        (proba,) = loaded.run_heads(rows, ["sentiment"])
        best = proba.argmax(axis=1).tolist()
        contributions = rows.vals * weights[rows.cols, best[0]]
        order = np.argsort(-contributions, kind="stable")[:top]
        featurizer = loaded.featurizer
        out: list[tuple[str, float]] = []
        for i in order.tolist():
            if contributions[i] <= 0.0:
                break
            col = int(rows.cols[i])
            term = (
                featurizer.word_terms[col]
                if col < featurizer.n_word
                else f"char:{featurizer.char_terms[col - featurizer.n_word]}"
            )
            out.append((term, float(contributions[i])))
        return out

    def _sentiment_weights(self) -> npt.NDArray[np.float64]:
        weights = self._explain_weights
        if weights is None:
            with self._lock:
                if self._explain_weights is None:
                    import onnx
                    from onnx import numpy_helper

                    raw = self._read_verified(self.manifest["models"]["sentiment"])
                    inits = {t.name: t for t in onnx.load_from_string(raw).graph.initializer}
                    self._explain_weights = numpy_helper.to_array(inits["W"]).astype(np.float64)
                weights = self._explain_weights
        return weights


PREDICT_CHUNK = 1024
"""Texts per ``session.run`` in :meth:`Engine.predict` (larger batches run in chunks).

A multiple of 64: ONNX Runtime computes the Softmax over the flattened batch in SIMD vectors with
a scalar tail, so a row's last bits depend on its position modulo the vector width, and only
chunks that keep those residues give the whole batch's results (tested)."""


def _compiled_results(labels: dict[str, tuple[str, ...]], anomaly: AnomalyDetector | None) -> Any:
    """The compiled end of :func:`_predict_chunk` (``inference._native.Results``), or None."""
    if compiled is None:
        return None
    table = (
        anomaly.result_table()
        if anomaly is not None
        # Unused: without a detector every Prediction gets the no-anomaly fields.
        else {
            "xs": (0.0, 1.0),
            "ys": (0.0, 1.0),
            "verdicts": [((), 0.0)],
            "nothing": 0,
            "long": 0,
            "outlier": (),
        }
    )
    return compiled.Results(
        prediction=Prediction,
        sentiment_labels=labels["sentiment"],
        language_labels=labels["language"],
        **table,
    )


class _Fast(NamedTuple):
    """The pieces of :func:`_predict_fast`, looked up once at load time."""

    feed: Callable[[list[str]], tuple[Any, Any, Any]]  # FeatureIndex.feed
    zeros: Callable[[int], npt.NDArray[np.float64]]  # _Feeder.zeros
    screen: Callable[[list[str], int], tuple[Any, list[int], list[int]]]  # Screen.screen_new
    anomaly: AnomalyDetector
    run: Callable[[list[str], dict[str, Any], Any], list[Any]]  # the compiled session's run
    run_options: Any  # onnxruntime.RunOptions, made once (the run makes one per call without)
    outputs: list[str]
    build: Any  # Results.build


def _fast_path(loaded: _Loaded) -> _Fast | None:
    """The compiled path for ``loaded``, or None when a piece is missing (no compiled module,
    heads not stacked, no anomaly detector, a session without the compiled run)."""
    anomaly = loaded.anomaly
    native_feed = loaded.feed._native_feed
    screen = None if anomaly is None else anomaly._compiled_screen()
    inner = getattr(loaded.session, "_sess", None)
    if (
        loaded.results is None
        or native_feed is None
        or screen is None
        or anomaly is None
        or inner is None
        or loaded.session.get_providers() != ["CPUExecutionProvider"]
    ):
        return None
    import onnxruntime as ort

    return _Fast(
        feed=native_feed,
        zeros=loaded.feed.zeros,
        screen=screen.screen_new,
        anomaly=anomaly,
        run=inner.run,  # see _runner
        run_options=ort.RunOptions(),
        outputs=loaded.outputs,
        build=loaded.results.build,
    )


def _predict_fast(
    fast: _Fast,
    texts: list[str],
    normalised: list[str],
    category_model: CategoryModel | None,
    versions: dict[str, str],
) -> list[Prediction]:
    """:func:`_predict_chunk` for the compiled path, with as few Python steps as it takes.

    Each step is one call into C (the featurizer, the screen, the session, the Predictions);
    measured in sequence, every Python frame and attribute lookup between them costs more than
    it does alone (they evict each other's code from the CPU caches), so this function keeps
    them few. The same results as :func:`_predict_chunk` (tested).
    """
    rows, cols, vals = fast.feed(normalised)
    features, codes, pending = fast.screen(texts, MAX_CHARS)
    screened = (
        None
        if not pending
        else fast.anomaly.finish(texts, features, codes, pending, max_chars=MAX_CHARS)
    )
    feed = {
        "rows": rows,
        "cols": cols,
        "vals": vals,
        "zeros": fast.zeros(len(texts)),
        fast.anomaly.input_name: features,
    }
    sentiment_p, language_p, scores = fast.run(fast.outputs, feed, fast.run_options)
    categories = None if category_model is None else _categories(category_model, normalised)
    overrides = None if screened is None else fast.anomaly.python_results(screened, scores)
    predictions: list[Prediction] = fast.build(
        sentiment_p, language_p, scores, codes, overrides, categories, versions
    )
    return predictions


def _predict_chunk(
    loaded: _Loaded,
    texts: list[str],
    normalised: list[str],
    category_model: CategoryModel | None,
    versions: dict[str, str],
) -> list[Prediction]:
    """:meth:`Engine.predict` for validated ``texts`` (``normalised`` their normal forms)."""
    feed = loaded.feed(normalised)
    if loaded.anomaly is not None:
        screened = loaded.anomaly.prepare(texts, checked=True, max_chars=MAX_CHARS)
        feed[loaded.anomaly.input_name] = screened.features
    # One run for every base head and the anomaly forest (see _assemble).
    sentiment_p, language_p, *forest_scores = loaded.run(loaded.outputs, feed)
    categories = None if category_model is None else _categories(category_model, normalised)
    if loaded.results is not None:
        if loaded.anomaly is None:
            return loaded.results.build(  # type: ignore[no-any-return]
                sentiment_p, language_p, None, None, None, categories, versions
            )
        return loaded.results.build(  # type: ignore[no-any-return]
            sentiment_p,
            language_p,
            forest_scores[0],
            screened.codes,
            loaded.anomaly.python_results(screened, forest_scores[0]),
            categories,
            versions,
        )
    anomalies: Iterable[AnomalyResult] = (
        repeat(_NO_ANOMALY, len(texts))
        if loaded.anomaly is None
        else loaded.anomaly.iter_results(screened, forest_scores[0])
    )
    return _predictions(
        loaded,
        sentiment_p=sentiment_p,
        language_p=language_p,
        anomalies=anomalies,
        categories=categories,
        versions=versions,
    )


def _predictions(
    loaded: _Loaded,
    *,
    sentiment_p: npt.NDArray[np.float64],
    language_p: npt.NDArray[np.float64],
    anomalies: Iterable[AnomalyResult],
    categories: list[tuple[str, float]] | None,
    versions: dict[str, str],
) -> list[Prediction]:
    """The end of :func:`_predict_chunk` in Python (the reference for ``Results.build``)."""
    n = len(sentiment_p)
    rows_categories: Sequence[tuple[str | None, float | None]] = (
        [(None, None)] * n if categories is None else categories
    )

    s_labels, l_labels = loaded.sentiment_labels, loaded.language_labels
    # Rows are read from the columns and results one at a time, so that per text only the
    # Prediction and its dict outlive the loop: fewer live objects for the garbage collector
    # (whose full passes otherwise show in large batches).
    s_columns, l_columns = sentiment_p.T.tolist(), language_p.T.tolist()
    # argmax over probabilities equals argmax over logits (softmax is monotonic); ties
    # resolve to the first label, as in the graph and scikit-learn.
    if n <= SMALL_BATCH:
        s_best = list(map(_argmax, zip(*s_columns, strict=True)))
        l_best = list(map(_argmax, zip(*l_columns, strict=True)))
    else:
        s_best, l_best = sentiment_p.argmax(axis=1).tolist(), language_p.argmax(axis=1).tolist()
    s_rows, l_rows = zip(*s_columns, strict=True), zip(*l_columns, strict=True)
    return [
        Prediction(
            sentiment=s_labels[si],
            sentiment_scores=dict(zip(s_labels, s_row, strict=True)),
            language=l_labels[li],
            language_score=l_row[li],
            category=category,
            category_score=category_score,
            anomaly_score=anomaly.score,
            flagged=anomaly.flagged,
            reasons=anomaly.reasons,
            model_versions=versions,
        )
        for si, s_row, li, l_row, (category, category_score), anomaly in zip(
            s_best, s_rows, l_best, l_rows, rows_categories, anomalies, strict=True
        )
    ]


SMALL_BATCH = 16
"""Up to this many rows, :func:`_argmax` in Python beats NumPy's per-call overhead."""


def _argmax(row: Sequence[float]) -> int:
    """``np.argmax`` of one row: the first maximum, or the first NaN (NumPy ranks NaN highest)."""
    best = 0
    for i in range(1, len(row)):
        value = row[i]
        if math.isnan(value):
            return best if math.isnan(row[best]) else i
        if value > row[best]:
            best = i
    return best


def _validated(texts: list[str]) -> list[str]:
    """The normal forms of ``texts``; raises as the module docstring says."""
    if compiled is not None:
        normalised: list[str] = compiled.normalize_batch(texts, normalize_python, MAX_CHARS)
        return normalised
    return _validated_python(texts)


def _validated_python(texts: list[str]) -> list[str]:
    """:func:`_validated` in Python only (the reference;
    ``tests/inference/test_native_results.py`` compares the two)."""
    if not isinstance(texts, list):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    normalised: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        clean = normalize(text)
        if not clean:
            raise ValueError(f"texts[{i}] is empty or whitespace-only")
        normalised.append(clean)
    return normalised


def _categories(model: CategoryModel, normalised: Sequence[str]) -> list[tuple[str, float]]:
    best, proba = model.head.run(model.featurizer.transform(normalised))
    return [(model.labels[b], float(p[b])) for b, p in zip(best, proba.tolist(), strict=True)]


_ENGINES: dict[tuple[Path, int], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(model_dir: Path, threads: int = 1) -> Engine:
    """The process-wide :class:`Engine` for ``model_dir`` (one per directory and thread count)."""
    key = (Path(model_dir).resolve(), threads)
    engine = _ENGINES.get(key)
    if engine is None:
        with _ENGINES_LOCK:
            engine = _ENGINES.get(key)
            if engine is None:
                engine = Engine(key[0], threads=threads)
                _ENGINES[key] = engine
    return engine


def reset_engines() -> None:
    """Forget cached engines so the next :func:`get_engine` reloads from disk."""
    with _ENGINES_LOCK:
        _ENGINES.clear()
