"""Samples in, figures out: percentiles, error counts, step verdicts and the rate search.

Every request the locustfile sends becomes one Sample; the figures are computed from the raw
samples (exact percentiles, not locust's rounded histogram), so the locustfile's in-run decisions
and the runner's report use the same arithmetic. No locust, no Django.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from loadtest.config import MIN_ACHIEVED_SHARE, P99_TARGET_MS, RAMP_SECONDS, Search


@dataclass(frozen=True)
class Sample:
    start: float  # seconds since the scenario began
    ms: float
    status: int  # 0: no HTTP response (connection refused, reset, timeout)
    name: str
    items: int  # feedback items stored by this request
    ok: bool  # the status the request expects (201, 200, 302 for a sign-in)

    def row(self) -> list[Any]:
        start, ms = round(self.start, 4), round(self.ms, 3)
        return [start, ms, self.status, self.name, self.items, self.ok]

    @classmethod
    def from_row(cls, row: list[Any]) -> Sample:
        start, ms, status, name, items, ok = row
        return cls(float(start), float(ms), int(status), str(name), int(items), bool(ok))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(samples: list[Sample], seconds: float) -> dict[str, Any]:
    """Requests, throughput, latency percentiles and errors by status over `seconds`."""
    latencies = sorted(s.ms for s in samples)
    errors = Counter(str(s.status) for s in samples if not s.ok)
    seconds = max(seconds, 1e-9)
    return {
        "requests": len(samples),
        "seconds": round(seconds, 2),
        "req_per_s": round(len(samples) / seconds, 2),
        "items": sum(s.items for s in samples),
        "items_per_s": round(sum(s.items for s in samples) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2) if latencies else 0.0,
        "errors": sum(errors.values()),
        "errors_by_status": dict(sorted(errors.items())),
        "server_errors": sum(1 for s in samples if s.status >= 500),
        "no_response": sum(1 for s in samples if s.status == 0),
    }


def by_name(samples: list[Sample], seconds: float) -> dict[str, dict[str, Any]]:
    names = sorted({s.name for s in samples})
    return {name: summarize([s for s in samples if s.name == name], seconds) for name in names}


def window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    """Samples whose request left in [start, end)."""
    return [s for s in samples if start <= s.start < end]


def achieved_rate(samples: list[Sample], start: float, end: float) -> float:
    """Requests a second sent in [start, end) once the clients have all begun."""
    start += min(RAMP_SECONDS, (end - start) / 4)
    return len(window(samples, start, end)) / max(end - start, 1e-9)


def verdict(
    summary: dict[str, Any], target_rate: float, achieved: float | None = None
) -> tuple[bool, list[str]]:
    """Whether a single-ingest run held: p99 within target, no 5xx, no errors, kept the rate."""
    reasons = []
    if summary["p99_ms"] > P99_TARGET_MS:
        reasons.append(f"p99 {summary['p99_ms']:.1f} ms > {P99_TARGET_MS:g} ms")
    if summary["server_errors"]:
        reasons.append(f"{summary['server_errors']} responses 5xx")
    other = summary["errors"] - summary["server_errors"]
    if other:
        reasons.append(f"{other} other errors {summary['errors_by_status']}")
    achieved = summary["req_per_s"] if achieved is None else achieved
    if achieved < MIN_ACHIEVED_SHARE * target_rate:
        reasons.append(f"achieved {achieved:.1f} of {target_rate:g} req/s")
    return not reasons, reasons


class RateSearch:
    """Doubling, then bisection, over the offered single-ingest rate (see config.Search)."""

    def __init__(self, search: Search) -> None:
        self.search = search
        self.best = 0.0  # highest passing rate so far
        self.lowest_failing: float | None = None
        self.steps: list[tuple[float, bool]] = []

    @staticmethod
    def round_rate(rate: float) -> float:
        return float(max(5, round(rate / 5) * 5))

    def first(self) -> float:
        return self.round_rate(min(self.search.start_rate, self.search.max_rate))

    def record(self, rate: float, passed: bool) -> float | None:
        """Note a step's outcome; the next rate to try, or None when the search is over."""
        self.steps.append((rate, passed))
        if passed:
            self.best = max(self.best, rate)
        else:
            self.lowest_failing = min(rate, self.lowest_failing or rate)
        if len(self.steps) >= self.search.max_steps:
            return None
        if self.lowest_failing is None:
            nxt = self.round_rate(min(rate * self.search.factor, self.search.max_rate))
            return nxt if nxt > rate else None
        hi, lo = self.lowest_failing, self.best
        if hi - lo <= max(5.0, self.search.resolution * lo):
            return None
        nxt = self.round_rate((lo + hi) / 2)
        return nxt if lo < nxt < hi else None


def fmt_table(rows: list[dict[str, Any]], title: str) -> str:
    """A fixed-width table of summaries; each row has a `label` and summarize()'s keys."""
    header = (
        f"{'':<34}{'requests':>9}{'req/s':>9}{'items/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'5xx':>6}  errors by status"
    )
    lines = [title, header]
    for row in rows:
        errors = ", ".join(f"{k}: {v}" for k, v in row["errors_by_status"].items()) or "-"
        lines.append(
            f"{row['label'][:33]:<34}{row['requests']:>9}{row['req_per_s']:>9.1f}"
            f"{row['items_per_s']:>9.0f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
            f"{row['p99_ms']:>9.1f}{row['max_ms']:>9.0f}{row['server_errors']:>6}  {errors}"
        )
    return "\n".join(lines)
