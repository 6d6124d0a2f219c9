"""Problem details (RFC 9457) for every API error: one shape, whoever raises it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

PROBLEM_CONTENT_TYPE = "application/problem+json"


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
    if _is_api(request):
        return problem_response(
            status=500,
            title="Server error",
            detail="Something went wrong on our side; it has been logged.",
            code="server_error",
        )
    return defaults.server_error(request)
