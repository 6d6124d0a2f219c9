"""Typed front door to django-ratelimit, the one counting engine for every limit in Puna."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from django_ratelimit.decorators import ratelimit

F = TypeVar("F", bound=Callable[..., Any])


def limit(*, key: str, rate: str, method: str | list[str] = "POST") -> Callable[[F], F]:
    """Refuse (429 via RATELIMIT_VIEW) once `key` exceeds `rate` for `method` requests."""
    return cast("Callable[[F], F]", ratelimit(key=key, rate=rate, method=method, block=True))
