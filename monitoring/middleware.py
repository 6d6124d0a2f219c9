"""Times every request and feeds the per-minute histograms, Server-Timing and request logs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from time import perf_counter, time

from django.db import connection
from django.http import HttpRequest, HttpResponse

from monitoring.context import RequestContext, activate
from monitoring.recorder import recorder
from monitoring.request_log import RequestLine, request_log
from tenants.context import current_org

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Anything else is folded into OTHER so a client cannot mint new series with made-up verbs.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID if it is safe to echo and log, else a fresh one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


def route_of(request: HttpRequest) -> str:
    """The URL pattern's name (`member-detail`), never the raw path: paths carry ids and
    tokens, and would give every object its own series."""
    match = request.resolver_match
    if match is None:
        # 404s and answers from middleware that ran before URL resolution (413, redirects).
        return UNMATCHED_ROUTE
    return match.view_name or match.route or UNMATCHED_ROUTE


class MonitoringMiddleware:
    """Sits just inside OrgContextResetMiddleware so the org is still active when it records."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = perf_counter()
        ctx = RequestContext(request_id_from(request.META.get("HTTP_X_REQUEST_ID")))
        # Left active on the way out (until `request_finished`): Django logs 4xx/5xx responses
        # after the middleware chain returns, and those lines need the request id too.
        activate(ctx)
        with connection.execute_wrapper(ctx.time_query):
            response = self.get_response(request)
        total_ms = (perf_counter() - start) * 1000.0
        self._record(request, response, ctx, total_ms)
        return response

    def _record(
        self, request: HttpRequest, response: HttpResponse, ctx: RequestContext, total_ms: float
    ) -> None:
        route = route_of(request)
        method = request.method if request.method in _METHODS else "OTHER"
        status = response.status_code
        org = current_org()
        org_id = org.pk if org is not None else None
        api = request.path.startswith("/api/")
        recorder.record_request(
            route=route,
            method=method,
            status_class=f"{status // 100}xx",
            org_id=org_id,
            api=api,
            duration_ms=total_ms,
            db_ms=ctx.db_ms,
            inference_ms=ctx.inference_ms,
        )
        response["X-Request-ID"] = ctx.request_id
        if api:
            response["Server-Timing"] = (
                f"db;dur={ctx.db_ms:.3f}, inference;dur={ctx.inference_ms:.3f}, "
                f"total;dur={total_ms:.3f}"
            )
        request_log.emit(
            RequestLine(
                time(),
                ctx.request_id,
                org_id,
                method,
                route,
                status,
                total_ms,
                ctx.db_ms,
                ctx.inference_ms,
            )
        )
