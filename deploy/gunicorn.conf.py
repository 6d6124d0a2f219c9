"""Gunicorn settings for the web process: `gunicorn saas.wsgi:application -c <this file>`.

Render and Railway set PORT; WEB_CONCURRENCY sizes the process count to the instance. Gunicorn reads
this module before Django starts, so it reads the environment itself (Django's settings never see
these names).
"""

from __future__ import annotations

import os


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
# workers from restarting at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# Heartbeat files on tmpfs: a container's overlay disk can stall them and get workers killed.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (tmpfs on purpose; gunicorn makes private files)

# The platform's proxy terminates TLS and is the only client; trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")

# Logs to stdout/stderr, where the platforms collect them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Gunicorn's control socket (~/.gunicorn/gunicorn.ctl): nothing in a container talks to it.
control_socket_disable = True
