"""Serving: sentiment, language, an org's category and anomaly for a batch of texts.

Pure by design (no Django, no database): the registry hands this module a model directory and,
per org, a category model file. Each text is normalised and featurized once; the sparse rows are
shared by every head built on the same featurizer, and ONNX Runtime does the model maths. The base
models (sentiment, language, anomaly forest) are merged into one graph at load time, so a batch
costs one ``session.run`` (see :func:`merge_models`). ONNX sessions open lazily on first use
(never at import), once per :class:`Engine`, under a lock, with explicit thread counts.

Inputs: ``predict`` takes a list of ``str``. A non-string raises ``TypeError`` and an empty or
whitespace-only text (also one made only of control characters) raises ``ValueError``, both
naming the index; the whole batch is rejected before any model runs. Only the first
``inference.text.MAX_CHARS`` (10,000) characters of a text are featurized and screened.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.anomaly import AnomalyDetector, AnomalyResult
from inference.features import Analysis, Featurizer, SparseRows
from inference.text import MAX_CHARS, normalize

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "puna.manifest/1"
CATEGORY_FORMAT = "puna.category/1"


@dataclass(frozen=True)
class Prediction:
    """Everything Puna infers about one text. Scores are probabilities in [0, 1];
    ``sentiment_scores`` sums to 1; ``category*`` are None when no org model was given."""

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


_PROBABILITIES = ["probabilities"]
_NO_ANOMALY = AnomalyResult(score=0.0, flagged=False, reasons=())


def merge_models(parts: Sequence[tuple[str, bytes, Sequence[str]]]) -> bytes:
    """One ONNX model running several exported models side by side on shared inputs.

    ``parts`` are (prefix, model bytes, outputs to keep); a kept output ``out`` of the part with
    prefix ``p`` is named ``p/out`` in the result. Nodes not needed for a kept output are dropped
    and every other name is prefixed, while graph inputs keep their names, so inputs of the same
    name (the heads' sparse rows) are fed once. Each part's nodes, initializers and attributes
    are copied unchanged, so outputs equal those of the separate models; the point is one
    ``session.run`` per batch instead of one per model (each call has fixed overhead).

    Contract: raises ``ModelError`` if two parts declare the same input with different types.
    """
    import onnx
    from onnx import helper

    nodes: list[Any] = []
    initializers: list[Any] = []
    inputs: dict[str, Any] = {}
    outputs: list[Any] = []
    opsets: dict[str, int] = {}
    ir_version = 0
    for prefix, raw, keep in parts:
        model = onnx.load_from_string(raw)
        graph = model.graph
        input_names = {i.name for i in graph.input}
        renamed = {name: f"{prefix}/{name}" for name in keep}

        def rename(
            name: str,
            inputs_kept: set[str] = input_names,
            out: dict[str, str] = renamed,
            p: str = prefix,
        ) -> str:
            if not name or name in inputs_kept:
                return name
            return out.get(name, f"{p}/{name}")

        needed = set(keep)
        kept = []
        for node in reversed(graph.node):
            if needed.intersection(node.output):
                kept.append(node)
                needed.update(node.input)
        for node in reversed(kept):
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{prefix}/{node.name}"
            copy.input[:] = [rename(n) for n in node.input]
            copy.output[:] = [rename(n) for n in node.output]
            nodes.append(copy)
        for init in graph.initializer:
            if init.name in needed:
                copy = onnx.TensorProto()
                copy.CopyFrom(init)
                copy.name = rename(init.name)
                initializers.append(copy)
        for inp in graph.input:
            if inp.name not in needed:
                continue
            if inp.name in inputs and inputs[inp.name].type != inp.type:
                raise ModelError(f"input {inp.name!r} has different types in the merged models")
            inputs.setdefault(inp.name, inp)
        for out in graph.output:
            if out.name in renamed:
                copy = onnx.ValueInfoProto()
                copy.CopyFrom(out)
                copy.name = renamed[out.name]
                outputs.append(copy)
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        ir_version = max(ir_version, model.ir_version)
    merged = helper.make_model(
        helper.make_graph(nodes, "puna_engine", list(inputs.values()), outputs, initializers),
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        ir_version=ir_version,
    )
    serialised: bytes = merged.SerializeToString()
    return serialised


def _metadata(raw: bytes) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load_from_string(raw).metadata_props}


def _sparse_feed(rows: SparseRows) -> dict[str, Any]:
    return {
        "rows": rows.rows,
        "cols": rows.cols,
        "vals": rows.vals,
        "n_rows": np.array([rows.n_rows], dtype=np.int64),
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
    session: Any  # every base model merged into one graph (see merge_models)
    outputs: list[str]
    sentiment_labels: tuple[str, ...]
    language_labels: tuple[str, ...]
    anomaly: Any  # inference.anomaly.AnomalyDetector, or None when the manifest has none
    versions: dict[str, str]

    def run_heads(self, rows: SparseRows, outputs: list[str]) -> list[Any]:
        """Run the merged graph for head ``outputs`` only; the forest gets zero rows."""
        feed = _sparse_feed(rows)
        if self.anomaly is not None:
            feed[self.anomaly.input_name] = self.anomaly.empty_features()
        result: list[Any] = self.session.run(outputs, feed)
        return result


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
                parts: list[tuple[str, bytes, Sequence[str]]] = []
                labels: dict[str, tuple[str, ...]] = {}
                for task in ("sentiment", "language"):
                    raw = self._read_verified(models[task])
                    meta = _metadata(raw)
                    if meta.get("puna.featurizer_sha256") != self.manifest["featurizer"]["sha256"]:
                        raise ModelError(f"{task} was exported for a different featurizer")
                    labels[task] = tuple(json.loads(meta["puna.labels"]))
                    parts.append((task, raw, _PROBABILITIES))
                anomaly = None
                if "anomaly" in models:
                    raw = self._read_verified(models["anomaly"])
                    anomaly = AnomalyDetector.from_metadata(
                        self.model_dir / models["anomaly"]["file"],
                        _metadata(raw),
                        threads=self.threads,
                    )
                    parts.append(("anomaly", raw, [anomaly.output_name]))
                try:
                    session = _open_session(merge_models(parts), self.threads)
                except ModelError:
                    raise
                except Exception as exc:  # onnxruntime raises its own types for bad graphs
                    raise ModelError(f"cannot load the models in {self.model_dir}: {exc}") from exc
                self._loaded = _Loaded(
                    featurizer=featurizer,
                    session=session,
                    outputs=[o.name for o in session.get_outputs()],
                    sentiment_labels=labels["sentiment"],
                    language_labels=labels["language"],
                    anomaly=anomaly,
                    versions=self.model_versions,
                )
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
        featurizer = loaded.featurizer
        analyses = [featurizer.analyze(t) for t in normalised]
        rows = featurizer.transform_analyses(analyses)
        feed = _sparse_feed(rows)
        if loaded.anomaly is not None:
            screened = loaded.anomaly.prepare([t[:MAX_CHARS] for t in texts])
            feed[loaded.anomaly.input_name] = screened.features
        # One run for every base head (and the anomaly forest): see merge_models.
        outputs = dict(zip(loaded.outputs, loaded.session.run(loaded.outputs, feed), strict=True))
        sentiment_p = outputs["sentiment/probabilities"]
        language_p = outputs["language/probabilities"]

        versions = dict(loaded.versions)
        categories: list[tuple[str | None, float | None]] = [(None, None)] * len(texts)
        if category_model is not None:
            categories = _categories(category_model, featurizer, analyses, normalised)
            versions["category"] = category_model.version
        if loaded.anomaly is not None:
            raw_scores = outputs[f"anomaly/{loaded.anomaly.output_name}"]
            anomalies = loaded.anomaly.results(screened, raw_scores)
        else:
            anomalies = [_NO_ANOMALY] * len(texts)

        s_labels, l_labels = loaded.sentiment_labels, loaded.language_labels
        # argmax over probabilities equals argmax over logits (softmax is monotonic); ties
        # resolve to the first label, as in the graph and scikit-learn.
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
                sentiment_p.argmax(axis=1).tolist(),
                sentiment_p.tolist(),
                language_p.argmax(axis=1).tolist(),
                language_p.tolist(),
                categories,
                anomalies,
                strict=True,
            )
        ]

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
        (proba,) = loaded.run_heads(rows, ["sentiment/probabilities"])
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


def _validated(texts: list[str]) -> list[str]:
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


def _categories(
    model: CategoryModel,
    base: Featurizer,
    analyses: Sequence[Analysis],
    normalised: Sequence[str],
) -> list[tuple[str | None, float | None]]:
    # Same n-gram ranges: reuse the base analyses and only look up the org's vocabulary.
    if model.featurizer.spec == base.spec:
        rows = model.featurizer.transform_analyses(analyses)
    else:
        rows = model.featurizer.transform(normalised)
    best, proba = model.head.run(rows)
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
