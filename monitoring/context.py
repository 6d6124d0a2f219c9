"""What the current request has spent so far, readable by the logging filter and timers.

A ContextVar rather than a thread-local so that it is right under ASGI as well as WSGI; it is
set only by `MonitoringMiddleware` (or `request_context()` in tests and tools).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


class RequestContext:
    """Per-request accumulators. Mutated in place, so nested code needs no token juggling."""

    __slots__ = ("db_ms", "inference_ms", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.db_ms = 0.0
        self.inference_ms = 0.0


_current: ContextVar[RequestContext | None] = ContextVar("puna_request_context", default=None)


def time_query(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """An execute wrapper adding each query's wall time to the current request's `db_ms`."""
    ctx = _current.get()
    if ctx is None:
        return execute(sql, params, many, context)
    start = perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        ctx.db_ms += (perf_counter() - start) * 1000.0


def install_query_timer(*, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """`connection_created` receiver: time every query on every connection, once.

    Installed per connection rather than per request with `connection.execute_wrapper()`,
    which costs several microseconds per request even when the request runs no query.
    """
    if time_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(time_query)


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
