"""Health endpoints and the rate-limit page."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from saas.errors import problem_response

logger = logging.getLogger(__name__)

RATELIMIT_RETRY_AFTER_SECONDS = 60
_migrations_known_applied = False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; touches nothing else."""
    return JsonResponse({"status": "ok"})


def _pending_migrations() -> int:
    # Once all migrations were seen applied they stay applied for this process's code.
    global _migrations_known_applied  # noqa: PLW0603
    if _migrations_known_applied:
        return 0
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    _migrations_known_applied = not plan
    return len(plan)


def _models_status() -> str:
    """Loads the base models once per process (verifying their sha256); the reason if not."""
    from inference.classify import engine
    from inference.runtime import ModelError

    try:
        engine().warm_up()
    except (ModelError, OSError, ValueError) as exc:
        logger.error("readyz: models not loaded: %s", exc)
        return f"error: {exc}"
    return "ok"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database answers, every migration is applied, models load."""
    checks: dict[str, str] = {}
    ok = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        pending = _pending_migrations()
        checks["migrations"] = "ok" if pending == 0 else f"{pending} unapplied"
        ok = pending == 0
    except DatabaseError as exc:
        logger.warning("readyz: database unavailable: %s", exc)
        checks["database"] = "unavailable"
        ok = False
    checks["models"] = _models_status()
    ok = ok and checks["models"] == "ok"
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


def ratelimited(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Too many attempts. Says nothing about whether an account exists."""
    if request.path.startswith("/api/"):
        response: HttpResponse = problem_response(
            status=429, title="Too many requests", detail="Try again later.", code="throttled"
        )
    else:
        response = render(request, "429.html", status=429)
    response["Retry-After"] = str(RATELIMIT_RETRY_AFTER_SECONDS)
    return response
