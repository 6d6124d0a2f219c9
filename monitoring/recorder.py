"""In-process aggregation of request and inference timings into per-minute histograms.

The request path only appends one tuple to a deque (no lock, no lookups: the request's own
work has just evicted everything from the CPU caches, so every dict and lock it touched used to
cost several times its textbook price); the timings are folded into per-minute histograms when
they are drained, or on the request path once PENDING_FOLD_AT have piled up. A background
thread hands the accumulated minutes to `services.monitoring_flush` every
MONITORING_FLUSH_SECONDS and once more at exit. Nothing here touches the database, and nothing
starts at import time: the flusher starts on the first recorded timing in each process, which
is also what makes it safe under gunicorn's preload-and-fork.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from monitoring.histogram import bucket_index, empty_counts

logger = logging.getLogger(__name__)

# (epoch minute, org id, route, method, status class)
RequestKey = tuple[int, int | None, str, str, str]
# (epoch minute, model, version)
InferenceKey = tuple[int, str, str]
# A request not yet folded into its minute: (epoch seconds, org id, route, method, status class,
# api, duration ms, db ms, inference ms).
PendingRequest = tuple[float, int | None, str, str, str, bool, float, float, float]

# If the database stays unreachable, keep at most this many unflushed keys, dropping the rest:
# monitoring must never grow a worker's memory without bound.
MAX_BUFFERED_KEYS = 50_000
# Any other verb is counted (and logged) as OTHER, so a client cannot mint new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Unfolded request timings a process may hold before the request path folds them itself.
PENDING_FOLD_AT = 20_000


@dataclass(slots=True)
class Aggregate:
    """Counts of one key's minute: a histogram plus sums for means and Prometheus' `_sum`."""

    counts: list[int] = field(default_factory=empty_counts)
    count: int = 0
    duration_sum_ms: float = 0.0
    db_sum_ms: float = 0.0
    inference_sum_ms: float = 0.0
    api: bool = False

    def merge(self, other: Aggregate) -> None:
        for index, value in enumerate(other.counts):
            if value:
                self.counts[index] += value
        self.count += other.count
        self.duration_sum_ms += other.duration_sum_ms
        self.db_sum_ms += other.db_sum_ms
        self.inference_sum_ms += other.inference_sum_ms
        self.api = self.api or other.api


@dataclass(slots=True)
class Batch:
    """What one flush writes."""

    requests: dict[RequestKey, Aggregate]
    inference: dict[InferenceKey, Aggregate]

    def __len__(self) -> int:
        return len(self.requests) + len(self.inference)


class Recorder:
    def __init__(self) -> None:
        self._reset()
        # A forked child must not inherit a lock held by a parent thread, nor the parent's
        # unflushed counts (the parent flushes those), nor believe its flusher is running.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pending: collections.deque[PendingRequest] = collections.deque()
        self._requests: dict[RequestKey, Aggregate] = {}
        self._inference: dict[InferenceKey, Aggregate] = {}
        self._flusher_started = False
        self._stop = threading.Event()

    # --- hot path ---------------------------------------------------------------------------

    def record_request(
        self,
        *,
        route: str,
        method: str,
        status_class: str,
        org_id: int | None,
        api: bool,
        duration_ms: float,
        db_ms: float = 0.0,
        inference_ms: float = 0.0,
        at: float | None = None,
    ) -> None:
        """Count one request into its minute's histogram (folded in later, see the module)."""
        self.record(
            (
                time.time() if at is None else at,
                org_id,
                route,
                method,
                status_class,
                api,
                duration_ms,
                db_ms,
                inference_ms,
            )
        )

    def record(self, timing: PendingRequest) -> None:
        """:meth:`record_request` for the middleware: one prepared tuple, nothing but the
        append. Its method may be any verb; unknown ones are counted as OTHER when folded."""
        pending = self._pending
        pending.append(timing)
        if len(pending) >= PENDING_FOLD_AT:
            self._fold()
        if not self._flusher_started:
            self._start_flusher()

    def _fold(self) -> None:
        """Move the pending request timings into their minutes' histograms."""
        pending = self._pending
        with self._lock:
            minutes = self._requests
            while pending:
                at, org_id, route, method, status_class, api, duration, db, inference = (
                    pending.popleft()
                )
                if method not in METHODS:
                    method = "OTHER"  # clients cannot mint new series with made-up verbs
                key = (int(at // 60), org_id, route, method, status_class)
                agg = minutes.get(key)
                if agg is None:
                    agg = minutes[key] = Aggregate(api=api)
                agg.counts[bucket_index(duration)] += 1
                agg.count += 1
                agg.duration_sum_ms += duration
                agg.db_sum_ms += db
                agg.inference_sum_ms += inference

    def record_inference(
        self, *, model: str, version: str, duration_ms: float, at: float | None = None
    ) -> None:
        """Count one inference call into its minute's histogram."""
        minute = int((time.time() if at is None else at) // 60)
        index = bucket_index(duration_ms)
        key = (minute, model[:100], version[:64])
        with self._lock:
            agg = self._inference.get(key)
            if agg is None:
                agg = self._inference[key] = Aggregate()
            agg.counts[index] += 1
            agg.count += 1
            agg.duration_sum_ms += duration_ms
        if not self._flusher_started:
            self._start_flusher()

    # --- flushing ---------------------------------------------------------------------------

    def drain(self) -> Batch:
        """Take everything recorded so far, leaving the buffers empty."""
        self._fold()
        with self._lock:
            batch = Batch(self._requests, self._inference)
            self._requests, self._inference = {}, {}
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back a batch whose flush failed, so the next flush retries it."""
        with self._lock:
            for key, agg in batch.requests.items():
                if key in self._requests:
                    self._requests[key].merge(agg)
                elif len(self._requests) < MAX_BUFFERED_KEYS:
                    self._requests[key] = agg
            for ikey, agg in batch.inference.items():
                if ikey in self._inference:
                    self._inference[ikey].merge(agg)
                elif len(self._inference) < MAX_BUFFERED_KEYS:
                    self._inference[ikey] = agg

    def _start_flusher(self) -> None:
        from django.conf import settings

        with self._lock:
            if self._flusher_started:
                return
            self._flusher_started = True
        interval: float = settings.MONITORING_FLUSH_SECONDS
        if interval <= 0:
            # Tests and tools flush synchronously with services.monitoring_flush().
            return
        thread = threading.Thread(
            target=self._run, args=(interval,), name="puna-monitoring-flusher", daemon=True
        )
        thread.start()
        atexit.register(self._flush_at_exit)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._flush_logged()

    def _flush_at_exit(self) -> None:
        self._stop.set()
        self._flush_logged()

    def _flush_logged(self) -> None:
        from django.db import connections

        from monitoring.services import monitoring_flush

        try:
            monitoring_flush(recorder=self)
        except Exception:
            logger.exception("monitoring: flush failed; will retry")
        finally:
            # One short-lived connection per flush instead of a second long-lived connection
            # per worker: reconnecting every few seconds is cheaper than the connection slots.
            connections.close_all()


recorder = Recorder()
