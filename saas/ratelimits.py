"""Typed front door to django-ratelimit, the one counting engine for every limit in Puna."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.decorators import ratelimit

F = TypeVar("F", bound=Callable[..., Any])


def limit(*, key: str, rate: str, method: str | list[str] = "POST") -> Callable[[F], F]:
    """Refuse (429 via RATELIMIT_VIEW) once `key` exceeds `rate` for `method` requests."""
    return cast("Callable[[F], F]", ratelimit(key=key, rate=rate, method=method, block=True))


def client_ip(request: HttpRequest) -> str:
    """The client's address as seen by the first proxy we trust (RATELIMIT_IP_META_KEY).

    Behind Render or Railway the socket peer is the platform's proxy, which appends the real
    client to X-Forwarded-For; anything left of the proxies we trust could be forged by the
    client, so we count TRUSTED_PROXY_COUNT entries from the right.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    remote = str(request.META.get("REMOTE_ADDR") or "0.0.0.0")  # noqa: S104  # nosec B104 # a placeholder address, nothing binds
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if part.strip()
    ]
    if len(forwarded) < proxies:
        return remote
    candidate = forwarded[-proxies]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return remote
    return candidate
