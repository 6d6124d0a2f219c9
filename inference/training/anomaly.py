"""Train the anomaly IsolationForest and export it as one ONNX ``TreeEnsembleRegressor`` node.

skl2onnx's stock IsolationForest converter is exact but emits ~27 nodes per tree (~2.5 ms a call);
the whole forest fits in a single ``ai.onnx.ml`` tree-ensemble node whose leaves hold each leaf's
contribution to ln(-score_samples), followed by two element-wise nodes. :func:`forest_to_onnx`
builds that graph directly with ``onnx.helper``, and :func:`train_anomaly` refuses to write a model
that does not match scikit-learn.

Standalone: ``python -m inference.training.anomaly --out /tmp/anom`` trains on the CSVs in
``inference/data/`` plus English sentences generated below.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.anomaly import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    AnomalyDetector,
    AnomalyResult,
    Calibration,
    text_statistics,
)

MODEL_FILE = "anomaly.onnx"
INPUT_NAME = "features"
OUTPUT_NAME = "score_samples"
ML_OPSET = 3
ONNX_OPSET = 17
IR_VERSION = 8
PARITY_TOLERANCE = 1e-4
# The outlier line sits at this quantile of held-out normal feedback's raw anomaly, so that the
# forest alone flags about 1 - OUTLIER_QUANTILE of ordinary texts (the rules decide the rest).
OUTLIER_QUANTILE = 0.995
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class ParityError(RuntimeError):
    """The exported graph disagrees with scikit-learn."""


def _average_path_length(n: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """c(n): average path length of an unsuccessful BST search, as scikit-learn defines it."""
    out = np.zeros_like(n, dtype=np.float64)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _node_depths(
    left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    depth = np.zeros(len(left), dtype=np.float64)
    # Children always have larger ids than their parent in scikit-learn trees, so one pass suffices.
    for node in range(len(left)):
        if left[node] != -1:
            depth[left[node]] = depth[node] + 1
            depth[right[node]] = depth[node] + 1
    return depth


def _float32_floor(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Largest float32 <= each value: for a float32 x, ``x <= t`` iff ``x <= floor32(t)``."""
    rounded = values.astype(np.float32)
    too_big = rounded.astype(np.float64) > values
    rounded[too_big] = np.nextafter(rounded[too_big], np.float32(-np.inf))
    return rounded


def forest_to_onnx(forest: Any, metadata: dict[str, str]) -> bytes:
    """Serialise a fitted IsolationForest as ONNX: float32 [N, k] ``features`` -> [N, 1]
    ``score_samples``.

    Each leaf holds ``-(depth + c(n_leaf)) * ln 2 / (n_trees * c(max_samples))``, so the ensemble
    sum is ``ln(-score_samples)`` and the graph ends with ``-exp(sum)``. Thresholds are rounded down
    to float32, which keeps scikit-learn's ``x <= threshold`` exact for the float32 input it also
    uses.
    """
    from onnx import TensorProto, helper

    n_features = int(forest.n_features_in_)
    denominator = len(forest.estimators_) * float(
        _average_path_length(np.array([float(forest.max_samples_)]))[0]
    )
    scale = -math.log(2.0) / denominator
    attrs: dict[str, Any] = {
        key: []
        for key in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_values",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    for tree_id, (estimator, features) in enumerate(
        zip(forest.estimators_, forest.estimators_features_, strict=True)
    ):
        tree = estimator.tree_
        left, right = tree.children_left, tree.children_right
        leaf_value = (
            _node_depths(left, right) + _average_path_length(tree.n_node_samples.astype(np.float64))
        ) * scale
        thresholds = _float32_floor(tree.threshold.astype(np.float64))
        missing_left = getattr(tree, "missing_go_to_left", np.zeros(len(left), dtype=np.uint8))
        for node in range(tree.node_count):
            is_leaf = left[node] == -1
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(node)
            # Trees see the forest's input through their own feature subset.
            attrs["nodes_featureids"].append(0 if is_leaf else int(features[tree.feature[node]]))
            attrs["nodes_values"].append(0.0 if is_leaf else float(thresholds[node]))
            attrs["nodes_modes"].append("LEAF" if is_leaf else "BRANCH_LEQ")
            attrs["nodes_truenodeids"].append(0 if is_leaf else int(left[node]))
            attrs["nodes_falsenodeids"].append(0 if is_leaf else int(right[node]))
            attrs["nodes_missing_value_tracks_true"].append(
                0 if is_leaf else int(missing_left[node])
            )
            if is_leaf:
                attrs["target_treeids"].append(tree_id)
                attrs["target_nodeids"].append(node)
                attrs["target_ids"].append(0)
                attrs["target_weights"].append(float(leaf_value[node]))
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT_NAME],
        ["log_score"],
        domain="ai.onnx.ml",
        name="isolation_forest",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        **attrs,
    )
    exp = helper.make_node("Exp", ["log_score"], ["neg_score"], name="exp")
    neg = helper.make_node("Neg", ["neg_score"], [OUTPUT_NAME], name="neg")
    graph = helper.make_graph(
        [ensemble, exp, neg],
        "puna_anomaly",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph,
        producer_name="puna.inference.training.anomaly",
        producer_version=str(FEATURES_VERSION),
        opset_imports=[
            helper.make_opsetid("", ONNX_OPSET),
            helper.make_opsetid("ai.onnx.ml", ML_OPSET),
        ],
        ir_version=IR_VERSION,
    )
    for key in sorted(metadata):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, metadata[key]
    from onnx import checker

    checker.check_model(model)
    return bytes(model.SerializeToString(deterministic=True))


def onnx_score_samples(
    model_bytes: bytes, features: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Run the exported graph once (single thread) and return ``score_samples`` as a 1-D array."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )
    out = session.run(None, {INPUT_NAME: features})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def check_parity(
    forest: Any, model_bytes: bytes, features: npt.NDArray[np.float32]
) -> dict[str, float]:
    """Compare the graph with scikit-learn on ``features``; raise :class:`ParityError` past
    tolerance.

    Contract: max |score_samples difference| <= PARITY_TOLERANCE and the same ``predict`` decision
    (decision_function < 0) on every row.
    """
    expected = forest.score_samples(features)
    got = onnx_score_samples(model_bytes, features)
    max_diff = float(np.max(np.abs(expected - got))) if len(features) else 0.0
    same = (expected - forest.offset_ < 0) == (got - forest.offset_ < 0)
    if max_diff > PARITY_TOLERANCE or not bool(np.all(same)):
        raise ParityError(
            f"anomaly ONNX export disagrees with scikit-learn: max |delta|={max_diff:.3g}, "
            f"{int(np.sum(~same))} of {len(features)} decisions differ"
        )
    return {"parity_max_abs_diff": max_diff, "parity_rows": float(len(features))}


# Texts that are not feedback, so parity is also checked on the branches anomalies reach.
PARITY_PROBES: tuple[str, ...] = (
    "",
    " ",
    "ok",
    "asdfghjkl qwerty zxcvbnm",
    "BUY NOW!!! CLICK HERE http://bit.ly/xyz http://bit.ly/abc FREE FREE FREE",
    "spam " * 40,
    "😀😀😀😀😀😀😀😀",
    "a" * 500,
    "Call 09171234567 or email promo@win.xyz for your PRIZE!!!",
    "\x00\x01\x02 control \x7f characters",
    "1234567890 " * 20,
    "Lorem ipsum " + "dolor sit amet " * 300,
)


def _split(texts: list[str], seed: int, holdout: float) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    n_hold = max(1, round(len(texts) * holdout))
    hold = sorted(order[:n_hold].tolist())
    held = set(hold)
    return [t for i, t in enumerate(texts) if i not in held], [texts[i] for i in hold]


def train_anomaly(
    normal_texts: list[str], *, seed: int, out_dir: Path, outlier_quantile: float = OUTLIER_QUANTILE
) -> dict[str, Any]:
    """Fit the forest on normal feedback, export, prove parity, write ``out_dir/anomaly.onnx``.

    ``outlier_quantile`` places the outlier line (calibrated score 0.5) at that quantile of held-out
    normal texts.

    Contract: deterministic for given texts and seed (same bytes, same sha256); raises
    ``ValueError`` for fewer than 50 texts and :class:`ParityError` when the export disagrees with
    scikit-learn. Returns the manifest entry ``{"file", "sha256", "version", "metrics",
    "features"}``.
    """
    from sklearn.ensemble import IsolationForest

    # Duplicates would weigh some statistics twice; sorting makes the result independent of input
    # order.
    texts = sorted({t for t in normal_texts if isinstance(t, str) and t.strip()})
    if len(texts) < 50:
        raise ValueError(
            f"need at least 50 distinct normal texts to train the anomaly model, got {len(texts)}"
        )
    train, held_out = _split(texts, seed, holdout=0.2)
    x_train = text_statistics(train)
    x_held = text_statistics(held_out)
    forest = IsolationForest(
        n_estimators=100,
        max_samples=min(256, len(train)),
        contamination="auto",
        random_state=seed,
        n_jobs=1,
    )
    forest.fit(x_train)

    raw_held = -forest.score_samples(x_held)
    median = float(np.quantile(raw_held, 0.5))
    line = float(np.quantile(raw_held, outlier_quantile))
    # Keep the knots strictly increasing even for degenerate data.
    line = max(line, median + 1e-6)
    calibration = Calibration(xs=(median, line, max(1.0, line + 1e-6)), ys=(0.0, 0.5, 1.0))
    metadata = {
        "calibration": calibration.to_json(),
        "features": json.dumps(list(FEATURE_NAMES)),
        "features_version": str(FEATURES_VERSION),
        "offset": repr(float(forest.offset_)),
        "seed": str(seed),
        "n_estimators": str(len(forest.estimators_)),
        "max_samples": str(int(forest.max_samples_)),
        "outlier_quantile": repr(float(outlier_quantile)),
    }
    model_bytes = forest_to_onnx(forest, metadata)
    parity = check_parity(
        forest, model_bytes, np.vstack([x_held, text_statistics(list(PARITY_PROBES))])
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    path.write_bytes(model_bytes)
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    iso_held = calibration.apply(raw_held)
    metrics: dict[str, float] = {
        "n_train": float(len(train)),
        "n_held_out": float(len(held_out)),
        "held_out_outlier_rate": float(np.mean(iso_held >= 0.5)),
        "raw_median": median,
        "raw_outlier_line": line,
        **parity,
    }
    return {
        "file": MODEL_FILE,
        "sha256": sha256,
        "version": f"anomaly-f{FEATURES_VERSION}-{sha256[:12]}",
        "metrics": metrics,
        "features": list(FEATURE_NAMES),
    }


# --- how the whole screen treats feedback ------------------------------------------------------

EVAL_FILE = "anomaly_eval.csv"


def _flag_counts(results: Sequence[AnomalyResult]) -> dict[str, Any]:
    flagged = sum(r.flagged for r in results)
    reasons = Counter(reason for r in results for reason in r.reasons)
    return {
        "n": len(results),
        "flagged": flagged,
        "rate": round(flagged / len(results), 4) if results else 0.0,
        "reasons": dict(sorted(reasons.items())),
    }


def screening_metrics(
    detector: AnomalyDetector,
    held_out: Mapping[str, Sequence[str]],
    eval_rows: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    """How the whole screen (rules, abuse lexicon and forest together) treats feedback.

    ``held_out``: language -> the build's held-out texts (labelled for sentiment or language, so
    ordinary feedback, though English tweets include real abuse and links). ``eval_rows``: the
    hand-written evaluation set (``text``, ``language``, ``expected_flagged`` "true"/"false",
    ``reason``). Returns per-language flag counts of both, and for the eval set's planted
    anomalies the share caught and the share of those named with the expected reason.
    """
    by_language = {
        language: _flag_counts(detector.score(sorted(set(texts))))
        for language, texts in sorted(held_out.items())
    }
    normal: dict[str, list[str]] = {}
    planted: list[Mapping[str, str]] = []
    for row in eval_rows:
        if row["expected_flagged"] == "true":
            planted.append(row)
        else:
            normal.setdefault(row["language"], []).append(row["text"])
    eval_normal = {
        language: _flag_counts(detector.score(texts)) for language, texts in sorted(normal.items())
    }
    results = detector.score([row["text"] for row in planted])
    caught = [(row, r) for row, r in zip(planted, results, strict=True) if r.flagged]
    named = sum(row["reason"] in r.reasons for row, r in caught)
    return {
        "held_out": by_language,
        "eval_normal": eval_normal,
        "eval_anomalous": {
            "n": len(planted),
            "caught": len(caught),
            "recall": round(len(caught) / len(planted), 4) if planted else 0.0,
            "reason_named": round(named / len(caught), 4) if caught else 0.0,
        },
    }


# --- standalone development data ------------------------------------------------------------------

_EN_SUBJECTS = (
    "The enrollment process",
    "Our math teacher",
    "The school canteen",
    "The delivery rider",
    "Your customer service hotline",
    "The new mobile app",
    "The registrar's office",
    "The library",
    "The online portal",
    "The barangay hall staff",
    "The guidance counselor",
    "The water refilling station",
    "The parking area",
    "My order",
    "The billing department",
    "The internet connection in the classroom",
)
_EN_PREDICATES = (
    "was fast and the staff were very polite.",
    "took almost three hours, which is too long for a simple form.",
    "is okay but could be better organized.",
    "keeps crashing whenever I try to upload my requirements.",
    "explained everything clearly, thank you so much!",
    "arrived late and the packaging was damaged.",
    "needs more chairs because students sit on the floor during exams.",
    "was closed even though the sign said open until 5 PM.",
    "has improved a lot since last semester.",
    "charged me twice for the same transaction, please refund the extra payment.",
    "is always clean and the food is affordable.",
    "did not reply to my email for two weeks.",
    "is very slow during lunch time.",
    "was helpful, but the line was long.",
    "should post the schedule earlier so parents can plan ahead.",
    "is fine, nothing to complain about.",
)
_EN_EXTRA = (
    "Thank you!",
    "Good job to the whole team.",
    "Salamat po.",
    "I hope this gets fixed soon.",
    "Please look into this.",
    "Overall a good experience.",
    "Not satisfied at all.",
    "Will recommend to friends.",
)
_EN_SENTENCES = (
    "ok",
    "Very good service.",
    "The aircon in room 204 has not worked since August.",
    "Can you extend the deadline for the research paper? Many of us got sick this week.",
    "My son really enjoys the reading program, the teachers are patient with him.",
    "I waited 45 minutes at the cashier and only one window was open.",
    "The new grading system is confusing. Please explain how the quarterly grade is computed.",
    "The portal at https://portal.school.edu.ph is down again, I cannot see my grades.",
    "Great food, friendly staff, and the prices are reasonable for students.",
    "Why is the tuition fee higher this year when the facilities are the same?",
    "The comfort rooms on the second floor have no water most of the day.",
    "I lost my ID and the replacement took only one day. Impressive!",
    "Delivery was on time. Item as described. 5 stars.",
    "The rider was rude when I asked him to wait for a minute.",
    "Please add more buses on the afternoon route, we are always standing.",
    "Can we have a vegetarian option in the canteen?",
    "The guard did not let my mother in even with a visitor pass.",
    "Customer support solved my problem in ten minutes. Thank you, Anna!",
    "Refund still not processed after 30 days. Ticket #48213.",
    "The Wi-Fi password changes every week and nobody tells the students.",
    "Nice seminar, but the sound system was too loud in the back.",
    "The NSTP schedule conflicts with our laboratory classes.",
    "Keep up the good work!",
    "Not bad.",
    "Could be better.",
    "The teacher always comes 20 minutes late and leaves early.",
    "Hindi po gumagana yung link sa email, pero okay na po ngayon.",
    "We appreciate the quick response of the barangay during the flood.",
    "The form asks for the same information three times; please simplify it.",
    "I love the new layout of the app, it is much easier to find my orders.",
    "The PE uniform sizes run small. Please order bigger sizes next time.",
    "The clinic ran out of basic medicine like paracetamol.",
    "Why do we need to print everything when the portal already has a copy?",
    "Excellent!!!",
    "The exam results were posted before the parents' meeting, thank you for that.",
    "Too many assignments due on the same day.",
    "The staff at window 3 were very patient with my lola.",
    "The LTO office needs a proper queueing system.",
    "Order arrived complete. Thanks, seller!",
    "Product quality is poor, the strap broke after one week.",
)


def english_sentences() -> list[str]:
    """A few hundred English feedback sentences for standalone training (written + combined)."""
    combos = [
        f"{subject} {predicate}" + (f" {extra}" if (i % 3 == 0) else "")
        for i, (subject, predicate, extra) in enumerate(
            itertools.product(_EN_SUBJECTS, _EN_PREDICATES, _EN_EXTRA[:1])
        )
    ]
    extras = [
        f"{subject} {predicate} {extra}"
        for subject, predicate, extra in zip(
            _EN_SUBJECTS * 4,
            _EN_PREDICATES[3:] + _EN_PREDICATES[:3],
            itertools.cycle(_EN_EXTRA),
            strict=False,
        )
    ]
    return [*_EN_SENTENCES, *combos, *extras]


def local_normal_texts(data_dir: Path = DATA_DIR) -> list[str]:
    """Texts of ``sentiment_*.csv`` and ``language_other.csv`` plus :func:`english_sentences`."""
    texts = english_sentences()
    for path in [*sorted(data_dir.glob("sentiment_*.csv")), data_dir / "language_other.csv"]:
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            texts.extend(row["text"] for row in csv.DictReader(handle) if row.get("text"))
    return texts


def main(argv: list[str] | None = None) -> int:
    """Command line: train on local data and print the manifest entry."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for anomaly.onnx")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    entry = train_anomaly(local_normal_texts(), seed=args.seed, out_dir=args.out)
    sys.stdout.write(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
