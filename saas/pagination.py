from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination as BaseCursorPagination
from rest_framework.request import Request


class CursorPagination(BaseCursorPagination):
    """Stable pages over growing tables; a view may set `ordering`, newest first by default."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "ordering", None)
        if ordering:
            return tuple(ordering) if not isinstance(ordering, str) else (ordering,)
        return tuple(self.ordering)

    def get_page_size(self, request: Request) -> int | None:
        # DRF quietly ignores a page_size it cannot read; an API that refuses unknown fields
        # should not answer `page_size=abc` with 50 rows as if nothing were wrong.
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        # The length test first: int() refuses strings of more than 4,300 digits with a ValueError.
        if not (
            len(raw) <= 3
            and raw.isascii()
            and raw.isdigit()
            and 1 <= int(raw) <= self.max_page_size
        ):
            raise ValidationError(
                {"page_size": [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                }
        return parameters
