"""Cross-cutting request handling."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from saas.errors import (
    database_unavailable,
    database_unavailable_response,
    problem_response,
)
from saas.ratelimits import client_ip
from tenants.audit import audit_actor_clear, audit_request_begin
from tenants.context import dangerously_all_orgs, without_org

_logger = logging.getLogger(__name__)

_PATH_LIMITS = [
    (re.compile(pattern), limit)
    for pattern, limit in settings.MAX_REQUEST_BODY_BYTES_BY_PATH.items()
]


class RequestBodyLimitMiddleware:
    """Refuse oversized bodies by their declared length before anything reads them.

    Django only enforces DATA_UPLOAD_MAX_MEMORY_SIZE when `request.body` is read, and DRF's
    parsers read the stream, so without this a 100 MB JSON body would be parsed in memory.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.MAX_REQUEST_BODY_BYTES
        for pattern, path_limit in _PATH_LIMITS:
            if pattern.match(request.path):
                limit = path_limit
                break
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(
                status=400,
                title="Invalid request",
                detail="Invalid Content-Length header.",
                code="bad_request",
            )
        if length > limit:
            return problem_response(
                status=413,
                title="Request too large",
                detail=f"Request body is {length} bytes; the limit is {limit} bytes.",
                code="request_too_large",
            )
        return self.get_response(request)


class OrgContextResetMiddleware:
    """Make sure no request inherits the previous request's org (or audit actor) on a reused
    thread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.admin_prefix = reverse("admin:index")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Every request starts acting for no org, so row-level security shows it no org-owned
        # row until the API base viewset or `org_view` resolves its org; afterwards the state is
        # what it was before (no org, in a server). The database setting follows the context
        # statement by statement (tenants/rls.py), so a reused connection never carries one
        # request's org into the next. A streamed body is read after this returns: it acts for
        # its org itself (`tenants.context.streamed_for_org`).
        audit_request_begin(ip_address=client_ip(request))
        try:
            with without_org():
                if not request.path.startswith(self.admin_prefix):
                    return self.get_response(request)
                # The admin lets staff (only: it checks) browse every org's rows.
                with dangerously_all_orgs("Django's admin, for staff, lists every org's rows"):
                    return self.get_response(request)
        finally:
            audit_actor_clear()


class DatabaseUnavailableMiddleware:
    """A page whose view finds PostgreSQL unreachable answers 503 with Retry-After, not 500.

    The API maps the same errors in its exception handler (saas/api.py); errors raised outside a
    view reach `saas.errors.server_error`, which does the same.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        _logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response(request)
