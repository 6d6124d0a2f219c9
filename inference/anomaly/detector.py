"""The anomaly detector: the ONNX IsolationForest over text statistics combined with the rules
(the combination contract is in the :mod:`inference.anomaly` docstring)."""

from __future__ import annotations

import json
import math
import threading
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from inference.anomaly import screen as compiled_screen
from inference.anomaly.lexicon import AbuseLexicon, default_lexicon
from inference.anomaly.rules import _RULE_ORDER, RULE_WEIGHTS, link_verdict, rules
from inference.anomaly.stats import (
    FEATURE_NAMES,
    TextAnalysis,
    analyse,
    check_texts,
    clean_text,
    extract_contacts,
    statistics,
)

MILD_ABUSE_SCORE = 0.3
MIN_OUTLIER_CHARS = 20


# A NamedTuple rather than a frozen dataclass: one is built per text on the hot path, and a
# frozen dataclass pays object.__setattr__ per field.
class AnomalyResult(NamedTuple):
    """Verdict for one text: ``score`` in [0, 1]; ``flagged`` iff ``reasons`` is not empty."""

    score: float
    flagged: bool
    reasons: tuple[str, ...]


_NOTHING_TO_SCREEN = AnomalyResult(score=0.0, flagged=False, reasons=())
_OUTLIER = ("outlier",)


def _verdicts() -> list[tuple[tuple[str, ...], float]]:
    """Per verdict code of the compiled screen (rule bits and MILD): (reasons, score floor).

    The floor is ``max`` of the mild floor and the fired rules' weights, so ``max(iso, floor)``
    is the score :func:`_combine` computes.
    """
    table = []
    for code in range(compiled_screen.MILD << 1):
        reasons = tuple(r for k, r in enumerate(_RULE_ORDER) if code >> k & 1)
        mild = MILD_ABUSE_SCORE if code & compiled_screen.MILD else 0.0
        table.append((reasons, max([mild, *(RULE_WEIGHTS[r] for r in reasons)])))
    return table


_VERDICTS = _verdicts()
_VERDICT_MASK = len(_VERDICTS) - 1
_SPAM_LINK = 1 << _RULE_ORDER.index("spam_link")


@dataclass(frozen=True)
class Calibration:
    """Piecewise-linear map (knots xs -> ys) from raw anomaly ``-score_samples`` to [0, 1]."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def apply(self, raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # np.interp clamps to the end knots, whose ys are 0 and 1.
        return np.interp(raw, self.xs, self.ys)

    def apply_one(self, x: float) -> float:
        """``apply`` for one value in plain Python (NumPy's call overhead dominates a single
        text); the same arithmetic as ``np.interp``, so the same result (tested)."""
        xs, ys = self.xs, self.ys
        if math.isnan(x):
            return x
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        j = bisect_right(xs, x) - 1
        if xs[j] == x:
            return ys[j]
        slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
        return slope * (x - xs[j]) + ys[j]

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        xs, ys = tuple(float(x) for x in data["xs"]), tuple(float(y) for y in data["ys"])
        if len(xs) < 2 or len(xs) != len(ys) or list(xs) != sorted(xs):
            raise ValueError(f"invalid anomaly calibration: {text!r}")
        return cls(xs=xs, ys=ys)

    def to_json(self) -> str:
        return json.dumps({"xs": list(self.xs), "ys": list(self.ys)}, sort_keys=True)


class Screened(NamedTuple):
    """Texts analysed for screening: the forest's float32 feature rows, and per text either the
    compiled screen's verdict code (>= 0, see :mod:`inference.anomaly.screen`) or -1 with its
    analysis in ``analyses`` (the Python path)."""

    features: npt.NDArray[np.float32]
    codes: list[int]
    analyses: dict[int, TextAnalysis]


def calibration_from_metadata(path: Path, meta: dict[str, str]) -> Calibration:
    """The calibration stored in an anomaly model's metadata; raises ``ValueError`` when the model
    was trained on other features than this code computes."""
    names = tuple(json.loads(meta.get("features", "[]")))
    if names != FEATURE_NAMES:
        raise ValueError(
            f"{path} was trained on features {names}, this code computes {FEATURE_NAMES}"
        )
    return Calibration.from_json(meta["calibration"])


class AnomalyDetector:
    """Scores texts with the ONNX IsolationForest plus the rules; one lazy session per instance.

    :meth:`score` runs everything. A caller that runs the forest itself (the runtime merges it
    with the heads into one ONNX session) uses :meth:`prepare`, feeds ``features`` to the graph
    input :attr:`input_name`, and hands the :attr:`output_name` output to :meth:`results`.
    """

    input_name = "features"
    output_name = "score_samples"

    def __init__(
        self,
        path: Path,
        threads: int = 1,
        lexicon: AbuseLexicon | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self._lexicon = lexicon
        self._session: Any = None
        self._calibration = calibration
        self._lock = threading.Lock()
        self._screen: Any = None
        self._screen_built = False

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> AnomalyDetector:
        """Detector for the model at ``path``; its session (``threads`` threads) opens lazily."""
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if not Path(path).is_file():
            raise FileNotFoundError(f"anomaly model not found: {path}")
        return cls(path, threads)

    @classmethod
    def from_metadata(cls, path: Path, meta: dict[str, str], threads: int = 1) -> AnomalyDetector:
        """Detector whose calibration comes from ``meta`` (the model's metadata_props), for callers
        that run the graph themselves; raises ``ValueError`` on a feature mismatch."""
        detector = cls.load(path, threads)
        detector._calibration = calibration_from_metadata(detector.path, meta)
        return detector

    def _ensure_session(self) -> tuple[Any, Calibration]:
        if self._session is not None and self._calibration is not None:
            return self._session, self._calibration
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                session = ort.InferenceSession(
                    str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
                )
                meta = session.get_modelmeta().custom_metadata_map
                self._calibration = calibration_from_metadata(self.path, meta)
                self.input_name = session.get_inputs()[0].name
                self._session = session
        assert self._calibration is not None  # noqa: S101  # nosec B101 # type narrowing; set with the session
        return self._session, self._calibration

    def raw_scores(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """IsolationForest ``score_samples`` (negative; lower is more abnormal) per feature row."""
        session, _ = self._ensure_session()
        if features.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        out = session.run(
            None, {self.input_name: np.ascontiguousarray(features, dtype=np.float32)}
        )[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def _lexicon_or_default(self) -> AbuseLexicon:
        return default_lexicon() if self._lexicon is None else self._lexicon

    def _compiled_screen(self) -> Any:
        """The compiled screen for this detector's lexicon (built once), or None without it."""
        if not self._screen_built:
            with self._lock:
                if not self._screen_built:
                    self._screen = compiled_screen.build_screen(
                        self._lexicon_or_default(), min_outlier_chars=MIN_OUTLIER_CHARS
                    )
                    self._screen_built = True
        return self._screen

    def prepare(
        self, texts: list[str], *, checked: bool = False, max_chars: int | None = None
    ) -> Screened:
        """Analyse ``texts`` once: the forest's feature rows, and the verdicts of the texts the
        compiled screen takes (the others keep their analysis for :func:`rules`). ``checked``:
        the caller has made sure every text is a ``str`` (``TypeError`` otherwise).
        ``max_chars``: analyse each text's first ``max_chars`` characters only, as if the caller
        had cut them (``text[:max_chars]``)."""
        if not checked:
            check_texts(texts)
        n = len(texts)
        screen = self._screen if self._screen_built else self._compiled_screen()
        if screen is None:
            features = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
            codes, pending = [compiled_screen.PYTHON] * n, list(range(n))
        elif max_chars is not None:
            features, codes, pending = screen.screen_new(texts, max_chars)
        else:
            features = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
            codes, pending = screen.screen(texts, features)
        return self.finish(texts, features, codes, pending, max_chars=max_chars)

    def finish(
        self,
        texts: list[str],
        features: npt.NDArray[np.float32],
        codes: list[int],
        pending: list[int],
        *,
        max_chars: int | None = None,
    ) -> Screened:
        """:meth:`prepare` after the compiled screen (``Screen.screen_new``) gave ``features``,
        ``codes`` and ``pending``: the texts it handed back are screened here (updating
        ``features`` and ``codes`` in place)."""
        analyses: dict[int, TextAnalysis] = {}
        for i in pending:
            text = texts[i] if max_chars is None else texts[i][:max_chars]
            if codes[i] == compiled_screen.EXTRACT:
                codes[i] = _screen_extracted(self._screen, text, features[i])
            if codes[i] == compiled_screen.PYTHON:
                analyses[i] = analyse(text)
        if analyses:
            features[list(analyses)] = statistics(list(analyses.values()))
        return Screened(features=features, codes=codes, analyses=analyses)

    def empty_features(self) -> npt.NDArray[np.float32]:
        """A zero-row feature matrix (to run a merged graph for its other outputs only)."""
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)

    def score(self, texts: list[str]) -> list[AnomalyResult]:
        """One :class:`AnomalyResult` per text, in order; combination as in the module docstring."""
        check_texts(texts)
        if not texts:
            return []
        screened = self.prepare(texts)
        return self.results(screened, self.raw_scores(screened.features))

    def results(self, screened: Screened, raw_scores: npt.ArrayLike) -> list[AnomalyResult]:
        """Combine the forest's ``score_samples`` for ``screened`` with the rules."""
        return list(self.iter_results(screened, raw_scores))

    def result_table(self) -> dict[str, Any]:
        """What ``inference._native.Results`` needs to combine the forest's scores with the
        screen's codes as :meth:`iter_results` does: the calibration knots, the verdict table
        (reasons and score floor per code, see :func:`_verdicts`), the NOTHING and LONG bits and
        the outlier reasons."""
        calibration = self._calibration
        if calibration is None:
            _, calibration = self._ensure_session()
        return {
            "xs": calibration.xs,
            "ys": calibration.ys,
            "verdicts": _VERDICTS,
            "nothing": compiled_screen.NOTHING,
            "long": compiled_screen.LONG,
            "outlier": _OUTLIER,
        }

    def python_results(
        self, screened: Screened, raw_scores: npt.ArrayLike
    ) -> dict[int, AnomalyResult] | None:
        """The results of the texts the compiled screen handed back (``screened.analyses``), by
        index, or None when there are none: ``inference._native.Results`` takes the others."""
        if not screened.analyses:
            return None
        calibration = self._calibration
        if calibration is None:
            _, calibration = self._ensure_session()
        raw = np.asarray(raw_scores).reshape(-1)
        lexicon = self._lexicon_or_default()
        return {
            i: _combine(a, _iso_scores(calibration, raw[i : i + 1])[0], lexicon)
            for i, a in screened.analyses.items()
        }

    def iter_results(
        self, screened: Screened, raw_scores: npt.ArrayLike
    ) -> Iterator[AnomalyResult]:
        """:meth:`results` one by one, for a caller that builds its own object per text: it need
        not keep every result alive at once (less work for the garbage collector)."""
        calibration = self._calibration
        if calibration is None:
            _, calibration = self._ensure_session()
        iso = _iso_scores(calibration, raw_scores)
        if len(iso) != len(screened.codes):
            raise ValueError(f"{len(iso)} forest scores for {len(screened.codes)} texts")
        analyses = screened.analyses
        if not analyses:
            return map(_from_code, screened.codes, iso)
        lexicon = self._lexicon_or_default()
        return (
            _combine(analyses[i], iso_score, lexicon) if code < 0 else _from_code(code, iso_score)
            for i, (code, iso_score) in enumerate(zip(screened.codes, iso, strict=True))
        )


def _iso_scores(calibration: Calibration, raw_scores: npt.ArrayLike) -> list[float]:
    raw = np.asarray(raw_scores)
    if raw.size == 1:
        return [calibration.apply_one(-float(raw.item()))]
    return calibration.apply(-raw.astype(np.float64).reshape(-1)).tolist()  # type: ignore[no-any-return]


def _from_code(code: int, iso_score: float) -> AnomalyResult:
    """:func:`_combine` for a text the compiled screen judged, the rules read from its code."""
    if code & compiled_screen.NOTHING:
        return _NOTHING_TO_SCREEN
    # max([iso, floor]) keeps iso unless the floor is greater, min([score, 0.49]) keeps score
    # unless 0.49 is smaller: the same comparisons as _combine's (so NaN and signed zeros too).
    reasons, floor = _VERDICTS[code & _VERDICT_MASK]
    score = floor if floor > iso_score else iso_score
    if not reasons:
        if iso_score >= 0.5 and code & compiled_screen.LONG:
            reasons = _OUTLIER
        elif score > 0.49:
            score = 0.49
    return AnomalyResult(round(score, 6), bool(reasons), reasons)


def _screen_extracted(screen: Any, text: str, row: npt.NDArray[np.float32]) -> int:
    """The code of a text with contacts or URLs to find: the regexes and the link checks in
    Python (stats.extract_contacts, rules.link_verdict), the rest compiled."""
    # The screen checked that clean_text leaves the text as it is (its first ANALYSIS_CHARS).
    clean = clean_text(text)
    found = extract_contacts(clean, sum(map(str.isdigit, clean)))
    code: int = screen.screen_extracted(
        text, found.rest, len(found.urls), found.emails + found.phones, row
    )
    if code >= 0 and found.urls:
        verdict = link_verdict(found.urls)
        if verdict or (verdict is None and code & compiled_screen.SPAM_CUE):
            code |= _SPAM_LINK
    return code


def _combine(a: TextAnalysis, iso_score: float, lexicon: AbuseLexicon) -> AnomalyResult:
    """The verdict for one analysed text (the combination in the module docstring): the
    reference, and the path for the texts the compiled screen hands back."""
    if a.n_nonspace == 0:
        # Nothing to screen: empty, whitespace or control characters only.
        return _NOTHING_TO_SCREEN
    reasons, mild = rules(a, lexicon)
    score = max([iso_score, MILD_ABUSE_SCORE if mild else 0.0, *(RULE_WEIGHTS[r] for r in reasons)])
    if not reasons and iso_score >= 0.5 and a.n_nonspace >= MIN_OUTLIER_CHARS:
        reasons = _OUTLIER
    elif not reasons:
        # Too short to call an outlier: keep the score below the flag line so flagged <=> reasons.
        score = min(score, 0.49)
    return AnomalyResult(score=round(float(score), 6), flagged=bool(reasons), reasons=reasons)
