"""Cross-cutting request handling."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from saas.errors import problem_response
from tenants.context import deactivate_org

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
    """Make sure no request inherits the previous request's org on a reused thread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        deactivate_org()
        try:
            return self.get_response(request)
        finally:
            deactivate_org()
