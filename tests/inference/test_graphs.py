"""The base heads stacked into one graph answer exactly like the exported heads."""

from __future__ import annotations

import numpy as np
import pytest

from inference.graphs import GraphError, fuse_linear_heads, merge_models
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
    featurizer = engine._load().featurizer
    texts = [normalize(t) for t in all_texts()]
    for batch in (texts, texts[:1], texts[7:40]):
        feed = _sparse_feed(featurizer.transform(batch))
        for got, expected in zip(
            stacked.run(outputs, feed), exported.run(outputs, feed), strict=True
        ):
            np.testing.assert_array_equal(got, expected)


def test_a_model_that_is_not_a_linear_head_is_refused():
    forest = (MODEL_DIR / "anomaly.onnx").read_bytes()
    with pytest.raises(GraphError, match="not an exported sparse linear head"):
        fuse_linear_heads([("anomaly", forest)])
