"""Times every request and feeds the per-minute histograms, Server-Timing and request logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from random import getrandbits
from time import perf_counter, time

from django.http import HttpRequest, HttpResponse

from monitoring.context import RequestContext, activate
from monitoring.recorder import METHODS, recorder
from tenants.context import current_org

request_logger = logging.getLogger("puna.request")
_QUIET_ROUTES = frozenset({"healthz", "readyz"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"
_STATUS_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID if it is safe to echo and log, else a fresh one.

    Fresh ids need to be unique, not secret (they are echoed to the client and logged), so
    they come from `random` (reseeded in every forked worker) at a third of os.urandom's cost.
    """
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return f"{getrandbits(128):032x}"  # nosec B311 # unique, not secret


def route_of(request: HttpRequest) -> str:
    """The URL pattern's name (`member-detail`), never the raw path: paths carry ids and
    tokens, and would give every object its own series."""
    match = request.resolver_match
    if match is None:
        # 404s and answers from middleware that ran before URL resolution (413, redirects).
        return UNMATCHED_ROUTE
    return match.view_name or match.route or UNMATCHED_ROUTE


class MonitoringMiddleware:
    """Sits just inside OrgContextResetMiddleware so the org is still active when it records.
    DB time comes from `context.time_query`, which every connection runs (see apps.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = perf_counter()
        ctx = RequestContext(request_id_from(request.META.get("HTTP_X_REQUEST_ID")))
        # Left active on the way out (until `request_finished`): Django logs 4xx/5xx responses
        # after the middleware chain returns, and those lines need the request id too.
        activate(ctx)
        response = self.get_response(request)
        total_ms = (perf_counter() - start) * 1000.0
        # Everything below runs once per request, right after the request's own work has
        # evicted it from the CPU caches: it is kept to a few attribute reads and one append.
        route = route_of(request)
        status = response.status_code
        org = current_org()
        api = request.path.startswith("/api/")
        recorder.record(
            (
                time(),
                None if org is None else org.pk,
                route,
                request.method or "OTHER",
                _STATUS_CLASSES[status // 100] if status < 600 else "5xx",
                api,
                total_ms,
                ctx.db_ms,
                ctx.inference_ms,
            )
        )
        response["X-Request-ID"] = ctx.request_id
        if api:
            response["Server-Timing"] = (
                f"db;dur={ctx.db_ms:.3f}, inference;dur={ctx.inference_ms:.3f}, "
                f"total;dur={total_ms:.3f}"
            )
        if route not in _QUIET_ROUTES or status >= 400:
            self._log(request, route, status, ctx, total_ms)
        return response

    def _log(
        self, request: HttpRequest, route: str, status: int, ctx: RequestContext, total_ms: float
    ) -> None:
        """The structured request line (healthy health probes get none, see below)."""
        method = request.method if request.method in METHODS else "OTHER"
        # Platforms probe health every few seconds: a line per healthy probe would drown the
        # logs (and cost more than the probe itself). Failing probes are still logged.
        if request_logger.isEnabledFor(logging.INFO):
            # makeRecord + handle skips logging's stack walk for the caller (~5 µs a line).
            record = request_logger.makeRecord(
                request_logger.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %s %.1fms",
                (method, route, status, total_ms),
                None,
                # No raw path: it can hold one-time tokens (invitations, password resets).
                extra={
                    "route": route,
                    "method": method,
                    "status": status,
                    "duration_ms": round(total_ms, 3),
                    "db_ms": round(ctx.db_ms, 3),
                    "inference_ms": round(ctx.inference_ms, 3),
                },
            )
            request_logger.handle(record)
