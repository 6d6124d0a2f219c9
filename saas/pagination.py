from __future__ import annotations

from typing import Any

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
