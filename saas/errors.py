"""Problem details (RFC 9457) for every API error: one shape, whoever raises it.

Also where "PostgreSQL is unavailable" becomes a 503 with Retry-After instead of a 500: the DRF
exception handler (saas/api.py) and DatabaseUnavailableMiddleware (pages) call
`database_unavailable_response`, and `server_error` is the backstop for errors raised outside a
view (in a middleware, or while saving the session).
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

PROBLEM_CONTENT_TYPE = "application/problem+json"

# How long a client should wait before retrying when the database is away; a PostgreSQL restart
# or failover takes a few seconds.
DATABASE_RETRY_AFTER_SECONDS = 5
# Connection refused, "terminating connection due to administrator command", "the database
# system is starting up", server closed the connection, statement/lock timeouts, deadlocks:
# psycopg and Django's wrappers call all of these OperationalError or InterfaceError, and every
# one is worth retrying. Other database errors (bad SQL, integrity) stay 500s.
_UNAVAILABLE = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
_DOWN_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Puna is briefly unavailable</title>"
    "<h1>Puna is briefly unavailable</h1><p>We cannot reach our database right now. Nothing you "
    "sent was lost; please try again in a few seconds.</p></html>"
)


def problem(
    *, status: int, title: str, detail: str, code: str, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:puna:error:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    *, status: int, title: str, detail: str, code: str, errors: dict[str, Any] | None = None
) -> JsonResponse:
    return JsonResponse(
        problem(status=status, title=title, detail=detail, code=code, errors=errors),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return problem_response(
            status=404, title="Not found", detail="No such resource.", code="not_found"
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its `except` block, so the exception is still at hand.
    if database_unavailable(sys.exc_info()[1]):
        return database_unavailable_response(request)
    if _is_api(request):
        return problem_response(
            status=500,
            title="Server error",
            detail="Something went wrong on our side; it has been logged.",
            code="server_error",
        )
    return defaults.server_error(request)


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it, e.g. inside a job queue error) means the database is
    unreachable or refused the statement for now."""
    for _ in range(5):
        if exc is None:
            return False
        if isinstance(exc, _UNAVAILABLE):
            return True
        exc = exc.__cause__
    return False


def database_unavailable_problem() -> dict[str, Any]:
    return problem(
        status=503,
        title="Service unavailable",
        detail="The database is unavailable; retry in a few seconds.",
        code="database_unavailable",
    )


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 + Retry-After: problem+json on the API, a plain page (no database needed) elsewhere."""
    if _is_api(request):
        response: HttpResponse = JsonResponse(
            database_unavailable_problem(), status=503, content_type=PROBLEM_CONTENT_TYPE
        )
    else:
        response = HttpResponse(_DOWN_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response
