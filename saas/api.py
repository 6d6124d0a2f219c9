"""API-wide error shape: `application/problem+json` with field errors under `errors`."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from saas.errors import (
    DATABASE_RETRY_AFTER_SECONDS,
    PROBLEM_CONTENT_TYPE,
    database_unavailable,
    database_unavailable_problem,
    problem,
)

logger = logging.getLogger(__name__)

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


MODELS_RETRY_AFTER_SECONDS = 30


def _models_unavailable(exc: Exception) -> bool:
    from inference.runtime import ModelError

    return isinstance(exc, ModelError)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if database_unavailable(exc):
        # Not our bug and not the client's: PostgreSQL is restarting or unreachable.
        logger.warning("database unavailable: %s", exc)
        set_rollback()
        return Response(
            database_unavailable_problem(),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
            content_type=PROBLEM_CONTENT_TYPE,
        )
    if _models_unavailable(exc):
        # The shipped models are missing or corrupt (/readyz says which): nothing is stored
        # unclassified, and the client is told to retry rather than shown a 500.
        logger.error("models unavailable: %s", exc)
        set_rollback()
        return Response(
            problem(
                status=503,
                title="Service unavailable",
                detail="Classification is unavailable; retry later.",
                code="models_unavailable",
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(MODELS_RETRY_AFTER_SECONDS)},
            content_type=PROBLEM_CONTENT_TYPE,
        )
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
