"""The public timing API other apps call. Cheap enough for every inference call.

    from monitoring.timing import inference_timer

    with inference_timer(model="sentiment", version="2026-01-03"):
        scores = session.run(...)

The time counts into the current request's `Server-Timing: inference` and into the
per-model-version histogram (the dashboard's and /metrics' inference latency). Outside a request
(a procrastinate worker) only the histogram is fed. Work handed to another thread keeps the
request's context only if started with `contextvars.copy_context().run`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from monitoring.context import current_request_context
from monitoring.recorder import recorder


@contextmanager
def inference_timer(model: str, version: str) -> Iterator[None]:
    """Time the block as one inference call of `model` at `version` (failures count too)."""
    start = perf_counter()
    try:
        yield
    finally:
        elapsed_ms = (perf_counter() - start) * 1000.0
        ctx = current_request_context()
        if ctx is not None:
            ctx.inference_ms += elapsed_ms
        recorder.record_inference(model=model, version=version, duration_ms=elapsed_ms)
