"""The one log line per request, written by a background thread.

Building a LogRecord, rendering it as JSON and writing it costs tens of microseconds: more
than everything else the middleware does together. The request thread only queues a tuple;
a thread started on first use (per process, so safe under gunicorn's fork) turns it into a
normal `puna.request` record with the request's own timestamp, request id and org id, so
handlers, filters and formatters from settings.LOGGING apply unchanged. With
MONITORING_FLUSH_SECONDS = 0 (tests) lines are written inline instead.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from typing import NamedTuple

request_logger = logging.getLogger("puna.request")

# Past this backlog, lines are dropped (and counted) rather than held in memory.
MAX_QUEUED = 10_000


class RequestLine(NamedTuple):
    created: float
    request_id: str
    org_id: int | None
    method: str
    route: str
    status: int
    duration_ms: float
    db_ms: float
    inference_ms: float


class RequestLog:
    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue: queue.SimpleQueue[RequestLine | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = False
        self.dropped = 0

    def emit(self, line: RequestLine) -> None:
        """Log one request: queued for the writer thread, or written now without one."""
        if not request_logger.isEnabledFor(logging.INFO):
            return
        if not self._started:
            self._start()
        if self._thread is None:
            self._write(line)
        elif self._queue.qsize() < MAX_QUEUED:
            self._queue.put(line)
        else:
            self.dropped += 1

    def _start(self) -> None:
        from django.conf import settings

        with self._lock:
            if self._started:
                return
            self._started = True
            if settings.MONITORING_FLUSH_SECONDS <= 0:
                return
            self._thread = threading.Thread(target=self._run, name="puna-request-log", daemon=True)
            self._thread.start()
        atexit.register(self._stop)

    def _run(self) -> None:
        while (line := self._queue.get()) is not None:
            try:
                self._write(line)
            except Exception:  # a broken handler must not kill the writer
                logging.getLogger(__name__).exception("monitoring: request log line failed")

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=2.0)
        if self.dropped:
            logging.getLogger(__name__).warning(
                "monitoring: %d request log lines dropped (queue full)", self.dropped
            )

    @staticmethod
    def _write(line: RequestLine) -> None:
        record = request_logger.makeRecord(
            request_logger.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s %.1fms",
            (line.method, line.route, line.status, line.duration_ms),
            None,
            # No raw path: it can hold one-time tokens (invitations, password resets).
            extra={
                "request_id": line.request_id,
                "org_id": line.org_id,
                "route": line.route,
                "method": line.method,
                "status": line.status,
                "duration_ms": round(line.duration_ms, 3),
                "db_ms": round(line.db_ms, 3),
                "inference_ms": round(line.inference_ms, 3),
            },
        )
        record.created = line.created
        record.msecs = (line.created % 1) * 1000
        request_logger.handle(record)


request_log = RequestLog()
