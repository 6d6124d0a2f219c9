"""The base heads stacked into one graph answer exactly like the exported heads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from inference.graphs import STACKED_INPUTS, GraphError, fuse_linear_heads, merge_models
from inference.runtime import Engine, _open_session, _sparse_feed
from inference.text import normalize
from tests.inference.conftest import MODEL_DIR, all_texts

HEADS = ("sentiment", "language")


def test_the_engine_runs_the_stacked_heads(engine: Engine):
    engine.warm_up()
    assert engine._load().fused


def test_stacked_heads_are_bit_identical_to_the_exported_heads(engine: Engine):
    heads = [(task, (MODEL_DIR / f"{task}.onnx").read_bytes()) for task in HEADS]
    outputs = [f"{task}/probabilities" for task in HEADS]
    stacked = _open_session(fuse_linear_heads(heads), 1)
    exported = _open_session(merge_models([(t, raw, ["probabilities"]) for t, raw in heads]), 1)
    loaded = engine._load()
    texts = [normalize(t) for t in all_texts()]
    for batch in (texts, texts[:1], texts[7:40]):
        rows = loaded.featurizer.transform(batch)
        for got, expected in zip(
            stacked.run(outputs, loaded.feed.from_rows(rows)),
            exported.run(outputs, _sparse_feed(rows)),
            strict=True,
        ):
            np.testing.assert_array_equal(got, expected)


def test_the_stacked_heads_take_their_inputs_as_the_operators_use_them():
    heads = [(task, (MODEL_DIR / f"{task}.onnx").read_bytes()) for task in HEADS]
    session = _open_session(fuse_linear_heads(heads), 1)
    assert tuple(i.name for i in session.get_inputs()) == STACKED_INPUTS
    assert [i.shape for i in session.get_inputs()] == [["nnz", 1], ["nnz"], ["nnz", 1], ["n", 7]]
    # No node that only reshapes or builds a constant: each costs ONNX Runtime time per call.
    ops = [n.op_type for n in onnx.load_from_string(fuse_linear_heads(heads)).graph.node]
    assert ops == ["Gather", "Mul", "ScatterND", "Add", "Split", "Softmax", "Softmax"]


def test_the_compiled_feed_is_the_featurizer_rows_in_the_stacked_layout(engine: Engine):
    loaded = engine._load()
    texts = [normalize(t) for t in all_texts()[:300]]
    for batch in (texts, texts[:1], []):
        rows = loaded.featurizer.transform(batch, native=False)
        compiled = loaded.feed(batch)
        python = loaded.feed.from_rows(rows)
        assert compiled.keys() == python.keys()
        for name in STACKED_INPUTS:
            assert compiled[name].dtype == python[name].dtype, name
            np.testing.assert_array_equal(compiled[name], python[name])


def test_a_model_that_is_not_a_linear_head_is_refused():
    forest = (MODEL_DIR / "anomaly.onnx").read_bytes()
    with pytest.raises(GraphError, match="not an exported sparse linear head"):
        fuse_linear_heads([("anomaly", forest)])
