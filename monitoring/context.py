"""What the current request has spent so far, readable by the logging filter and timers.

A ContextVar rather than a thread-local so that it is right under ASGI as well as WSGI; it is
set only by `MonitoringMiddleware` (or `request_context()` in tests and tools).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from time import perf_counter
from typing import Any


class RequestContext:
    """Per-request accumulators. Mutated in place, so nested code needs no token juggling."""

    __slots__ = ("db_ms", "inference_ms", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.db_ms = 0.0
        self.inference_ms = 0.0

    def time_query(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        """A `connection.execute_wrapper` that adds each query's wall time to `db_ms`."""
        start = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db_ms += (perf_counter() - start) * 1000.0


_current: ContextVar[RequestContext | None] = ContextVar("puna_request_context", default=None)


def current_request_context() -> RequestContext | None:
    return _current.get()


def activate(ctx: RequestContext) -> Token[RequestContext | None]:
    return _current.set(ctx)


def deactivate(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def clear_request_context(**kwargs: Any) -> None:
    """`request_finished` receiver: the request is over once its response is closed, which is
    after Django logs 4xx/5xx responses, so those lines keep the request id."""
    _current.set(None)


@contextmanager
def request_context(request_id: str) -> Iterator[RequestContext]:
    """Act as if inside a request with this id (tests, tools); restores the previous one."""
    ctx = RequestContext(request_id)
    token = activate(ctx)
    try:
        yield ctx
    finally:
        deactivate(token)
