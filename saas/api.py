"""API-wide error shape: `application/problem+json` with field errors under `errors`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from saas.errors import PROBLEM_CONTENT_TYPE, problem

_TITLES = {
    400: "Invalid request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
}


def _field_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return detail
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Services raise Django's ValidationError so the dashboard and the API share messages.
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        exc = exceptions.ValidationError(detail=detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("No such resource.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = "error"
    errors: dict[str, Any] | None = None
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(response.data)
        detail_text = "Some fields are invalid; see `errors`."
        code = "validation_error"
    else:
        detail = getattr(exc, "detail", None)
        detail_text = str(detail) if detail is not None else str(exc)
        code = str(getattr(detail, "code", None) or getattr(exc, "default_code", "error"))
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        code = "not_authenticated"
    body = problem(
        status=response.status_code,
        title=_TITLES.get(response.status_code, "Error"),
        detail=detail_text,
        code=code,
        errors=errors,
    )
    headers = {k: v for k, v in response.items() if k.lower() != "content-type"}
    return Response(
        body, status=response.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )
