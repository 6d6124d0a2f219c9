"""`python -m monitoring.bench`: what MonitoringMiddleware adds to a request's latency.

Two WSGI handlers are built from the same settings, one without the middleware, and called
in-process alternately, request by request in ABBA order, so that drift in machine load
(other processes, the database) hits both sides alike. The monitored side pays for everything
the feature does in production: timing, the per-query DB timer, the histogram update,
X-Request-ID, Server-Timing, the JSON request log line (formatted as in production, written to
/dev/null) and the background flusher every 10 s.

Endpoints: /healthz (no database: the worst case, the overhead is nearly all there is) and
GET /api/v1/members as a signed-in member (session, user, membership and list queries).
Needs PostgreSQL (DATABASE_URL); uses a `puna_bench` database, kept between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MONITORING_MIDDLEWARE = "monitoring.middleware.MonitoringMiddleware"
TARGET_P50_OVERHEAD = 0.05

StartResponse = Callable[..., Any]
Samples = dict[str, list[float]]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    headers: dict[str, str]
    per_block: int


def _environ(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": endpoint.path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **endpoint.headers,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"bench request failed: {status}")


def _call(app: WsgiApp, endpoint: Endpoint) -> float:
    """One request through `app`, in ms, including reading and closing the response."""
    environ = _environ(endpoint)
    start = time.perf_counter_ns()
    response = app(environ, _start_response)
    for _chunk in response:
        pass
    close = getattr(response, "close", None)
    if close is not None:
        close()
    return (time.perf_counter_ns() - start) / 1e6


@dataclass(frozen=True)
class Side:
    label: str
    app: WsgiApp
    request_log: bool = True


SIDES = ("bare", "monitored", "no log line")


def _time_block(sides: list[Side], endpoint: Endpoint, into: Samples) -> None:
    """Requests in rotating order (A B C, B C A, C A B, ...): each monitored request has bare
    neighbours measured under the same machine load, and no side is always first."""
    request_logger = logging.getLogger("puna.request")
    for index in range(endpoint.per_block):
        shift = index % len(sides)
        for side in sides[shift:] + sides[:shift]:
            request_logger.disabled = not side.request_log
            into[side.label].append(_call(side.app, endpoint))
    request_logger.disabled = False


def _percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


def _prepare_database() -> dict[str, str]:
    """A migrated bench database with one org and a signed-in owner; returns the API headers."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from tenants.api.base import SESSION_ORG_KEY
    from tenants.models import Membership, Organization, Role, User

    connection.settings_dict["TEST"] = {
        **connection.settings_dict.get("TEST", {}),
        "NAME": "puna_bench",
    }
    with contextlib.redirect_stdout(io.StringIO()):  # createcachetable talks even at verbosity 0
        connection.creation.create_test_db(
            verbosity=0, autoclobber=True, keepdb=True, serialize=False
        )
    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user = User.objects.filter(email="bench@puna.local").first() or User.objects.create_user(
        "bench@puna.local", None
    )
    Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Role.OWNER})
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_ORG_KEY] = org.slug
    session.save()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return {"HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={cookie}"}


def _quiet_production_logging() -> None:
    """Production's JSON formatting and filter, writing to /dev/null instead of the terminal."""
    from monitoring.logging import JsonFormatter

    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
            handler.setFormatter(JsonFormatter())


def run(*, rounds: int, scale: float) -> dict[str, Samples]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    api_headers = _prepare_database()
    endpoints = [
        Endpoint("healthz", "/healthz", {}, per_block=max(1, int(300 * scale))),
        Endpoint("api members", "/api/v1/members", api_headers, per_block=max(1, int(30 * scale))),
    ]
    from django.conf import settings

    # Rate limits off: the bench far exceeds plan rates, and the limits cost the same both sides.
    with override_settings(MONITORING_FLUSH_SECONDS=10.0, RATELIMIT_ENABLE=False):
        with override_settings(
            MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != MONITORING_MIDDLEWARE]
        ):
            bare = WSGIHandler()
        monitored = WSGIHandler()
        _quiet_production_logging()

        sides = [
            Side("bare", bare),
            Side("monitored", monitored),
            # The same handler with the JSON request line switched off: how the cost splits.
            Side("no log line", monitored, request_log=False),
        ]
        samples: dict[str, Samples] = {e.name: {label: [] for label in SIDES} for e in endpoints}
        for endpoint in endpoints:  # warm-up: imports, templates, connections, caches
            _time_block(sides, endpoint, {label: [] for label in SIDES})
        gc.collect()
        # As in a gunicorn worker after start-up (deploy/gunicorn.conf.py, post_worker_init):
        # what was loaded so far is out of the collector's way.
        gc.freeze()
        for _ in range(rounds):
            for endpoint in endpoints:
                _time_block(sides, endpoint, samples[endpoint.name])
    return samples


def report(samples: dict[str, Samples]) -> bool:
    """Print p50/p95 per endpoint and side; True if every p50 overhead is within target."""
    ok = True
    print(f"{'endpoint':<13}{'side':<13}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}  overhead vs bare")
    for name, sides in samples.items():
        p50_bare = _percentile(sides["bare"], 0.50)
        p95_bare = _percentile(sides["bare"], 0.95)
        for label in SIDES:
            data = sides[label]
            p50, p95 = _percentile(data, 0.50), _percentile(data, 0.95)
            overhead = ""
            if label != "bare":
                overhead = (
                    f"p50 {p50 / p50_bare - 1:+.1%} ({(p50 - p50_bare) * 1000:+.0f} µs), "
                    f"p95 {p95 / p95_bare - 1:+.1%}"
                )
            print(f"{name:<13}{label:<13}{len(data):>6}{p50:>9.3f}{p95:>9.3f}  {overhead}")
        ratio = _percentile(sides["monitored"], 0.50) / p50_bare - 1
        within = ratio <= TARGET_P50_OVERHEAD
        ok = ok and within
        print(
            f"{name:<13}p50 overhead ratio {ratio:+.1%}: "
            f"{'within' if within else 'OVER'} the {TARGET_P50_OVERHEAD:.0%} target"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scale", type=float, default=1.0, help="requests per block factor")
    parser.add_argument("--strict", action="store_true", help="exit 1 when over the target")
    args = parser.parse_args(argv)

    # Like manage.py: a command-line entry point picks its settings module. The test profile
    # means DEBUG off and no production secrets needed; DATABASE_URL must be set.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas.settings")
    os.environ.setdefault("PUNA_ENV", "test")
    import django

    django.setup()
    started = time.monotonic()
    samples = run(rounds=args.rounds, scale=args.scale)
    ok = report(samples)
    print(f"({args.rounds} rounds of interleaved requests in {time.monotonic() - started:.1f} s)")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
