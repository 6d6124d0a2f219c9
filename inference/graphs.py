"""ONNX graph assembly at load time: the base models become one graph, one ``session.run``.

Both functions copy the exported models' own weights, nodes and initializers (the files that
passed the parity gate); nothing is re-derived from scikit-learn. That the stacked heads answer
bit for bit like the exported files is tested over the corpus (``tests/inference/test_graphs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class GraphError(ValueError):
    """Models that cannot be assembled (conflicting inputs, unexpected head structure)."""


STACKED_INPUTS = ("rows", "cols", "vals", "zeros")
"""The inputs of :func:`fuse_linear_heads`' graph (see there for their shapes)."""

# The nodes of an exported linear head (inference.training.export) that compute probabilities.
HEAD_OPS = (
    "Concat",
    "Gather",
    "Unsqueeze",
    "Unsqueeze",
    "ConstantOfShape",
    "Mul",
    "ScatterND",
    "Add",
    "Softmax",
)


def merge_models(parts: Sequence[tuple[str, bytes, Sequence[str]]]) -> bytes:
    """One ONNX model running several exported models side by side on shared inputs.

    ``parts`` are (prefix, model bytes, outputs to keep); a kept output ``out`` of the part with
    prefix ``p`` is named ``p/out`` in the result. Nodes not needed for a kept output are dropped
    and every other name is prefixed, while graph inputs keep their names, so inputs of the same
    name (the heads' sparse rows) are fed once. Each part's nodes, initializers and attributes
    are copied unchanged, so outputs equal those of the separate models; the point is one
    ``session.run`` per batch instead of one per model (each call has fixed overhead).

    Contract: raises ``GraphError`` if two parts declare the same input with different types.
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
                raise GraphError(f"input {inp.name!r} has different types in the merged models")
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


def fuse_linear_heads(heads: Sequence[tuple[str, bytes]]) -> bytes:
    """One graph computing every exported linear head (``inference.training.export``) at once.

    Each head is ``softmax(ScatterND-add(Gather(W, cols) * vals) + b)`` over the same sparse
    rows. Stacking the heads' ``W`` side by side ([V, K1 + K2 + ...]) and their biases, then
    splitting the logits per head, does each head's arithmetic on the same operands in the same
    order, so the probabilities are bit-identical to the separate heads while the gather, the
    multiply and the scatter run once. Outputs are named ``<task>/probabilities``.

    The inputs come shaped as the operators use them, so the graph has no nodes that only
    reshape (each node costs ONNX Runtime about a microsecond per call, which shows for one
    text): ``rows`` [nnz, 1] int64 (ScatterND's indices), ``cols`` [nnz] int64, ``vals``
    [nnz, 1] float64 and ``zeros``, an all-zero [n, K1 + K2 + ...] float64 (the scatter's
    start; :data:`STACKED_INPUTS`). ``inference._native.FeatureIndex.feed`` gives the first
    three in these shapes.

    Contract: raises ``GraphError`` unless every head has exactly the exported structure
    (:data:`HEAD_OPS` over initializers ``W`` [V, K] and ``b`` [K], double precision).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights: list[Any] = []
    biases: list[Any] = []
    sizes: list[int] = []
    inputs: dict[str, Any] = {}
    opset = 0
    ir_version = 0
    for task, raw in heads:
        model = onnx.load_from_string(raw)
        graph = model.graph
        kept = [
            n.op_type
            for n in graph.node
            if n.op_type not in ("ArgMax", "Cast")
            and not (n.op_type == "Gather" and n.input[0] == "classes")
        ]
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        w, b = inits.get("W"), inits.get("b")
        if (
            sorted(kept) != sorted(HEAD_OPS)
            or w is None
            or b is None
            or w.dtype != np.float64
            or w.ndim != 2
            or b.shape != (w.shape[1],)
        ):
            raise GraphError(f"{task} is not an exported sparse linear head")
        if weights and w.shape[0] != weights[0].shape[0]:
            raise GraphError(f"{task} has {w.shape[0]} features, not {weights[0].shape[0]}")
        weights.append(w)
        biases.append(b)
        sizes.append(w.shape[1])
        for inp in graph.input:
            inputs.setdefault(inp.name, inp)
        opset = max(opset, *(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))
        ir_version = max(ir_version, model.ir_version)
    tasks = [task for task, _ in heads]
    logits = [f"{task}/logits" for task in tasks]
    outputs = [f"{task}/probabilities" for task in tasks]
    nodes = [
        helper.make_node("Gather", ["W", "cols"], ["gathered"], axis=0),
        helper.make_node("Mul", ["gathered", "vals"], ["contrib"]),
        helper.make_node("ScatterND", ["zeros", "rows", "contrib"], ["scores"], reduction="add"),
        helper.make_node("Add", ["scores", "b"], ["logits"]),
        helper.make_node("Split", ["logits", "split"], logits, axis=1),
        *(
            helper.make_node("Softmax", [name], [out], axis=1)
            for name, out in zip(logits, outputs, strict=True)
        ),
    ]
    for i, node in enumerate(nodes):
        node.name = f"{node.op_type}_{i}"
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(np.hstack(weights)), "W"),
        numpy_helper.from_array(np.concatenate(biases), "b"),
        numpy_helper.from_array(np.array(sizes, dtype=np.int64), "split"),
    ]
    value_infos = [
        helper.make_tensor_value_info(out, TensorProto.DOUBLE, [None, k])
        for out, k in zip(outputs, sizes, strict=True)
    ]
    if any(name not in inputs for name in ("rows", "cols", "vals", "n_rows")):
        raise GraphError("heads must take rows, cols, vals and n_rows")
    graph_inputs = [
        helper.make_tensor_value_info("rows", TensorProto.INT64, ["nnz", 1]),
        helper.make_tensor_value_info("cols", TensorProto.INT64, ["nnz"]),
        helper.make_tensor_value_info("vals", TensorProto.DOUBLE, ["nnz", 1]),
        helper.make_tensor_value_info("zeros", TensorProto.DOUBLE, ["n", sum(sizes)]),
    ]
    fused = helper.make_model(
        helper.make_graph(nodes, "puna_heads", graph_inputs, value_infos, initializers),
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=ir_version,
    )
    serialised: bytes = fused.SerializeToString()
    return serialised
