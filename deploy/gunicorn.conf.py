"""Gunicorn settings for the web process: `gunicorn saas.wsgi:application -c <this file>`.

Render and Railway set PORT; WEB_CONCURRENCY sizes the process count to the instance. Gunicorn reads
this module before Django starts, so it reads the environment itself (Django's settings never see
these names).
"""

from __future__ import annotations

import os
from typing import Any


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# The platforms route to whatever listens on $PORT on every interface.
bind = f"0.0.0.0:{_int('PORT', 8000)}"

# Processes x threads. Each process loads the ONNX runtime once (~150 MB), so memory sets the
# process count (2 fits a 512 MB instance); threads cover requests waiting on PostgreSQL.
workers = _int("WEB_CONCURRENCY", 2)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)

# A request that runs this long is stuck; the platforms' proxies give up before 100 s anyway.
timeout = _int("GUNICORN_TIMEOUT", 30)
# Deploys send SIGTERM: finish in-flight requests before the platform's own kill deadline.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Keep idle proxy connections open longer than the proxy itself does, so it never reuses a socket
# that gunicorn has just closed (sporadic 502s). gthread parks idle connections without a thread.
keepalive = _int("GUNICORN_KEEPALIVE", 75)

# Recycle workers now and then so slow leaks cannot grow without bound; the jitter keeps all
# workers from restarting at once. A new worker loads Django and the models (about a second of
# CPU), so recycling every thousand requests would cost several restarts a minute under load.
max_requests = _int("GUNICORN_MAX_REQUESTS", 50_000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 5_000)

# Heartbeat files on tmpfs: a container's overlay disk can stall them and get workers killed.
worker_tmp_dir = "/dev/shm"  # noqa: S108  # nosec B108 # tmpfs on purpose; gunicorn makes private files

# The platform's proxy terminates TLS and is the only client; trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")

# Logs to stdout/stderr, where the platforms collect them. No access log: the app writes one
# structured line per request (monitoring.middleware) with the request id, org, route and timings;
# gunicorn's line would repeat it without those, at a cost on every request.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Gunicorn's control socket (~/.gunicorn/gunicorn.ctl): nothing in a container talks to it.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    """Load the models before the worker takes its first request, then freeze the heap.

    `gc.freeze()` moves everything allocated so far (Django, the vocabularies, the lexicon) out
    of the collector's generations, so a full collection during a request walks only what
    requests allocated, not a heap of millions of long-lived objects. A model that fails to load
    does not stop the worker: it serves /healthz, and /readyz answers 503 with the reason.
    """
    import gc

    try:
        from inference.classify import engine

        engine().warm_up()
    except Exception:
        worker.log.exception("models not loaded at worker start; /readyz will report why")
    gc.freeze()
