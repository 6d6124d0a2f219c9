"""Per-key request rates by plan, counted by django-ratelimit in the shared cache.

Every API response carries X-RateLimit-Limit/Remaining/Reset; over the limit DRF answers 429
with Retry-After. If Redis is unreachable the cache backend counts per process (see
saas/cache.py): the API keeps serving and limits stay in force, only looser.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

USAGE_ATTR = "puna_rate_usage"


def plan_rate(plan: str) -> str:
    return str(settings.PLAN_LIMITS[plan]["rate"])


class PlanRateThrottle(BaseThrottle):
    """Counts each request against its API key (or member) at the org's plan rate."""

    def allow_request(self, request: Request, view: Any) -> bool:
        org = view.org
        principal = (
            f"key:{view.api_key.pk}" if view.api_key is not None else f"user:{request.user.pk}"
        )
        rate = plan_rate(org.plan)
        usage = get_usage(
            request,
            group="api",
            key=lambda _group, _request: f"{org.pk}:{principal}",
            rate=rate,
            increment=True,
        )
        if usage is None:  # RATELIMIT_ENABLE is off
            return True
        usage["reset"] = int(time.time()) + max(int(usage["time_left"]), 0)
        setattr(request, USAGE_ATTR, usage)
        self._wait = max(int(usage["time_left"]), 1)
        return not usage["should_limit"]

    def wait(self) -> float:
        return float(getattr(self, "_wait", 60))


def rate_limit_headers(request: Request) -> dict[str, str]:
    usage = getattr(request, USAGE_ATTR, None)
    if not usage:
        return {}
    return {
        "X-RateLimit-Limit": str(usage["limit"]),
        "X-RateLimit-Remaining": str(max(usage["limit"] - usage["count"], 0)),
        "X-RateLimit-Reset": str(usage["reset"]),
    }
