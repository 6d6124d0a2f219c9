"""The API-wide parts of the OpenAPI schema that no single view declares: its error answers.

Every API error is `application/problem+json` (see saas/api.py), and any operation can meet
most of them before its view runs (a bad Content-Length, an oversized body, a missing key, a
scope the key lacks, a throttle). Declaring them here keeps the schema honest for clients and
for schemathesis, which fails any status code or content type the schema does not list.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry, ResolvedComponent
from rest_framework.mixins import ListModelMixin

from saas.errors import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "Messages by field name (nested by index for lists).",
            "additionalProperties": True,
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}

# Status -> description. Answers any operation can give, whatever its view does.
_ALWAYS = {
    "400": "Invalid input; the fields at fault are under `errors`.",
    "401": "No valid API key or session.",
    "403": "The key or role lacks the permission this operation needs.",
    "404": "No such object in this organization (or no organization selected).",
    "406": "The `Accept` header asks for something other than JSON.",
    "413": "The request body is over the size limit.",
}
_WITH_BODY = {
    "409": "Another request with this `Idempotency-Key` is in progress.",
    "415": "The body is not in a media type this operation accepts.",
    "422": "This `Idempotency-Key` was used for a different request.",
}
_THROTTLED = {"429": "Over the plan's rate limit or monthly quota; see `Retry-After`."}
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "required": True,
        "description": "Seconds to wait before retrying.",
    }
}


class PunaAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the problem+json answers every operation can give."""

    def _answers_one_object(self) -> bool:
        # A viewset's own `list()` without ListModelMixin answers with one object (the org,
        # its stats, its usage, its models by kind): neither an array nor paginated.
        return getattr(self.view, "action", None) == "list" and not isinstance(
            self.view, ListModelMixin
        )

    def _is_list_view(self, serializer: Any = None) -> bool:
        if self._answers_one_object():
            return False
        return bool(super()._is_list_view(serializer))

    def get_operation_id(self) -> str:
        operation_id = str(super().get_operation_id())
        if self._answers_one_object():
            # Keep the `…_list` ids clients were generated with (and apart from `…_retrieve`).
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id

    def get_operation(
        self,
        path: str,
        path_regex: str,
        path_prefix: str,
        method: str,
        registry: ComponentRegistry,
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        problem = ResolvedComponent(  # type: ignore[no-untyped-call]
            name="Problem",
            type=ResolvedComponent.SCHEMA,
            object="Problem",
            schema=PROBLEM_SCHEMA,
        )
        registry.register_on_missing(problem)
        errors = dict(_ALWAYS)
        if method.upper() == "POST":
            errors.update(_WITH_BODY)
        elif "requestBody" in operation:
            errors["415"] = _WITH_BODY["415"]
        if getattr(self.view, "throttle_classes", None):
            errors.update(_THROTTLED)
        for parameter in operation.get("parameters", []):
            # DRF reads an empty optional query value (`?source=`) as if it were left out.
            if parameter.get("in") == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        responses: dict[str, Any] = operation["responses"]
        for status, declared in responses.items():
            # A view declares an error with a description only; its body is a problem.
            if status.startswith("4") and "content" not in declared:
                declared["content"] = {PROBLEM_CONTENT_TYPE: {"schema": problem.ref}}
        for status, description in errors.items():
            if status in responses:
                continue
            response: dict[str, Any] = {
                "description": description,
                "content": {PROBLEM_CONTENT_TYPE: {"schema": problem.ref}},
            }
            if status == "429":
                response["headers"] = _RETRY_AFTER
            responses[status] = response
        return operation
