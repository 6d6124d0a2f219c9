"""The org's monitoring page, the operators' global page and the Prometheus endpoint."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring import selectors
from monitoring.metrics import CONTENT_TYPE, metrics_render
from tenants.context import dangerously_all_orgs
from tenants.decorators import OrgRequest, org_view

SLOWEST_ROUTES = 10


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", selectors.DEFAULT_WINDOW)
    return window if window in selectors.WINDOWS else selectors.DEFAULT_WINDOW


@require_GET
@org_view("monitoring")
def org_monitoring(request: OrgRequest) -> HttpResponse:
    """Latency and errors of the org's own API traffic, per endpoint."""
    window = _window(request)
    return render(
        request,
        "monitoring/org.html",
        {
            "window": window,
            "windows": list(selectors.WINDOWS),
            "endpoints": selectors.org_endpoint_stats(org=request.org, window=window),
        },
    )


@require_GET
def ops_monitoring(request: HttpRequest) -> HttpResponse:
    """Everything, for staff; a 404 for everyone else (the page's existence is not advertised)."""
    if not (request.user.is_authenticated and request.user.is_staff):
        raise Http404
    window = _window(request)
    with dangerously_all_orgs("the staff-only operators' page sums every org's traffic"):
        routes = selectors.route_stats(window=window)
        context = {
            "window": window,
            "windows": list(selectors.WINDOWS),
            "routes": routes,
            "slowest": sorted(
                (r for r in routes if r.p95_ms is not None), key=lambda r: -(r.p95_ms or 0.0)
            )[:SLOWEST_ROUTES],
            "inference": selectors.inference_stats(window=window),
            "jobs": selectors.job_backlog(),
            "alerts": selectors.alert_list(),
            "alert_threshold_ms": settings.MONITORING_P95_ALERT_MS,
            "alert_minutes": settings.MONITORING_ALERT_MINUTES,
        }
    return render(request, "monitoring/ops.html", context)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition behind `Authorization: Bearer <METRICS_TOKEN>`; 404 when no token
    is configured."""
    token: str = settings.METRICS_TOKEN
    if not token:
        raise Http404
    supplied = request.META.get("HTTP_AUTHORIZATION", "")
    if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE)
