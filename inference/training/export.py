"""ONNX export of linear heads over sparse TF-IDF features, and the parity gate.

The stock skl2onnx graph for ``TfidfVectorizer + LogisticRegression`` takes strings and builds
dense N x vocabulary intermediates (slow: ~4-5k texts/s). Instead, :class:`SparseLinearHead` wraps
a fitted linear classifier and is registered with skl2onnx (``update_registered_converter``)
with a converter whose graph takes the featurizer's coordinate-form rows::

    rows int64[nnz], cols int64[nnz], vals double[nnz], n_rows int64[1]
      -> Gather(W, cols) * vals -> ScatterND(add) into [n_rows, K] -> + b
      -> label string[n_rows] (ArgMax), probabilities double[n_rows, K] (Softmax)

All maths is float64 so labels agree with scikit-learn even on near-ties. Exports are made
byte-for-byte reproducible (fixed producer fields, no doc strings, sorted metadata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import to_onnx, update_registered_converter
from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

from inference.features import Featurizer
from inference.text import normalize

TARGET_OPSET = 18
INPUT_NAMES = ("rows", "cols", "vals", "n_rows")
PARITY_MAX_ABS_DIFF = 1e-4


class ParityError(RuntimeError):
    """An export disagrees with the scikit-learn model it came from; the build must stop."""


@dataclass(frozen=True)
class SparseLinearHead:
    """A fitted linear probabilistic classifier in exportable form.

    ``coef`` is [K, V] and ``intercept`` [K] such that ``softmax(x @ coef.T + intercept)`` equals
    the classifier's ``predict_proba``: for a binary LogisticRegression (sigmoid of one score)
    the first row is all zeros, since softmax([0, z]) == [1 - sigmoid(z), sigmoid(z)].
    """

    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    classes: tuple[str, ...]

    @classmethod
    def from_logistic(cls, model: Any) -> SparseLinearHead:
        """From a fitted multinomial or binary ``LogisticRegression``."""
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(model.intercept_, dtype=np.float64)
        classes = tuple(str(c) for c in model.classes_)
        if coef.shape[0] == 1 and len(classes) == 2:
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        if coef.shape[0] != len(classes):
            raise ValueError(f"coef has {coef.shape[0]} rows for {len(classes)} classes")
        return cls(coef=coef, intercept=intercept, classes=classes)


def _parser(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    operator = scope.declare_local_operator("PunaSparseLinearHead", model)
    operator.inputs = list(inputs)
    label = scope.declare_local_variable("label", StringTensorType([None]))
    probabilities = scope.declare_local_variable("probabilities", DoubleTensorType([None, None]))
    operator.outputs.append(label)
    operator.outputs.append(probabilities)
    return operator.outputs


def _shape_calculator(operator: Any) -> None:
    k = len(operator.raw_operator.classes)
    operator.outputs[0].type = StringTensorType([None])
    operator.outputs[1].type = DoubleTensorType([None, k])


def _converter(scope: Any, operator: Any, container: Any) -> None:
    head: SparseLinearHead = operator.raw_operator
    rows, cols, vals, n_rows = (v.full_name for v in operator.inputs)
    label, probabilities = (v.full_name for v in operator.outputs)
    k = len(head.classes)

    def name(base: str) -> str:
        return str(scope.get_unique_variable_name(base))

    weights = name("W")
    container.add_initializer(
        weights, TensorProto.DOUBLE, list(head.coef.T.shape), head.coef.T.ravel().tolist()
    )
    bias = name("b")
    container.add_initializer(bias, TensorProto.DOUBLE, [k], head.intercept.tolist())
    classes = name("classes")
    container.add_initializer(classes, TensorProto.STRING, [k], [c.encode() for c in head.classes])
    axis1 = name("axis1")
    container.add_initializer(axis1, TensorProto.INT64, [1], [1])
    k_dim = name("k_dim")
    container.add_initializer(k_dim, TensorProto.INT64, [1], [k])

    gathered = name("gathered")
    container.add_node("Gather", [weights, cols], [gathered], axis=0, name=name("Gather"))
    vals_col = name("vals_col")
    container.add_node("Unsqueeze", [vals, axis1], [vals_col], name=name("Unsqueeze"))
    contrib = name("contrib")
    container.add_node("Mul", [gathered, vals_col], [contrib], name=name("Mul"))
    out_shape = name("out_shape")
    container.add_node("Concat", [n_rows, k_dim], [out_shape], axis=0, name=name("Concat"))
    zeros = name("zeros")
    container.add_node(
        "ConstantOfShape",
        [out_shape],
        [zeros],
        value=helper.make_tensor("value", TensorProto.DOUBLE, [1], [0.0]),
        name=name("ConstantOfShape"),
    )
    row_idx = name("row_idx")
    container.add_node("Unsqueeze", [rows, axis1], [row_idx], name=name("Unsqueeze"))
    scores = name("scores")
    container.add_node(
        "ScatterND", [zeros, row_idx, contrib], [scores], reduction="add", name=name("ScatterND")
    )
    logits = name("logits")
    container.add_node("Add", [scores, bias], [logits], name=name("Add"))
    container.add_node("Softmax", [logits], [probabilities], axis=1, name=name("Softmax"))
    best = name("best")
    container.add_node("ArgMax", [logits], [best], axis=1, keepdims=0, name=name("ArgMax"))
    container.add_node("Gather", [classes, best], [label], axis=0, name=name("Gather"))


update_registered_converter(
    SparseLinearHead,
    "PunaSparseLinearHead",
    _shape_calculator,
    _converter,
    parser=_parser,
)


def export_head(head: SparseLinearHead, *, metadata: Mapping[str, str]) -> bytes:
    """Serialise ``head`` as a reproducible ONNX model with ``metadata`` in metadata_props.

    Contract: the same head and metadata always give the same bytes.
    """
    initial_types = [
        ("rows", Int64TensorType([None])),
        ("cols", Int64TensorType([None])),
        ("vals", DoubleTensorType([None])),
        ("n_rows", Int64TensorType([1])),
    ]
    model = to_onnx(
        head,
        initial_types=initial_types,
        target_opset={"": TARGET_OPSET},
        final_types=[
            ("label", StringTensorType([None])),
            ("probabilities", DoubleTensorType([None, len(head.classes)])),
        ],
    )
    return _deterministic_bytes(model, metadata)


def _deterministic_bytes(model: onnx.ModelProto, metadata: Mapping[str, str]) -> bytes:
    model.producer_name = "puna"
    model.producer_version = "1"
    model.domain = "ph.puna"
    model.model_version = 1
    model.doc_string = ""
    model.graph.doc_string = ""
    model.graph.name = "puna_sparse_linear_head"
    for node in model.graph.node:
        node.doc_string = ""
    del model.metadata_props[:]
    for key in sorted(metadata):
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=metadata[key]))
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString(deterministic=True)
    return serialised


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_metadata(model_bytes: bytes) -> dict[str, str]:
    """The metadata_props of a serialised ONNX model."""
    model = onnx.load_from_string(model_bytes)
    return {p.key: p.value for p in model.metadata_props}


def run_head(
    session: ort.InferenceSession, rows: Any
) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float64]]:
    """Run an exported head on :class:`inference.features.SparseRows`."""
    label, proba = session.run(
        None,
        {
            "rows": rows.rows,
            "cols": rows.cols,
            "vals": rows.vals,
            "n_rows": np.array([rows.n_rows], dtype=np.int64),
        },
    )
    return label, proba


@dataclass(frozen=True)
class ParityReport:
    """How an export compares with its scikit-learn pipeline on held-out texts."""

    n_texts: int
    label_agreement: float
    max_abs_diff: float

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready form for the manifest."""
        return {
            "n_texts": self.n_texts,
            "label_agreement": self.label_agreement,
            "max_abs_diff": self.max_abs_diff,
        }


def parity_gate(
    model_bytes: bytes, featurizer: Featurizer, pipeline: Any, texts: Sequence[str]
) -> ParityReport:
    """Compare the export (our featurizer + ONNX head) with ``pipeline`` on raw ``texts``.

    Contract: raises :class:`ParityError` unless labels agree on 100% of texts and every
    probability differs by at most :data:`PARITY_MAX_ABS_DIFF`; returns the measured report.
    """
    if not texts:
        raise ParityError("parity gate needs at least one held-out text")
    normalised = [normalize(t) for t in texts]
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    labels, proba = run_head(session, featurizer.transform(normalised))
    expected_proba = pipeline.predict_proba(normalised)
    expected_labels = pipeline.predict(normalised)
    classes = [str(c) for c in pipeline.classes_]
    if [str(c) for c in json.loads(read_metadata(model_bytes)["puna.labels"])] != classes:
        raise ParityError(f"label order differs from the pipeline's {classes}")
    agree = float(np.mean(labels.astype(str) == expected_labels.astype(str)))
    diff = float(np.max(np.abs(proba - expected_proba)))
    report = ParityReport(n_texts=len(texts), label_agreement=agree, max_abs_diff=diff)
    if agree < 1.0 or not diff <= PARITY_MAX_ABS_DIFF:
        raise ParityError(
            f"ONNX export rejected: label agreement {agree:.6f} (need 1.0), "
            f"max |dp| {diff:.3g} (need <= {PARITY_MAX_ABS_DIFF})"
        )
    return report
