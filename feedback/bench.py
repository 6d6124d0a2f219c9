"""`python -m feedback.bench`: the ingestion API through the full stack.

Starts gunicorn (deploy/gunicorn.conf.py) on a free loopback port against DATABASE_URL (as
DATABASE_APP_USER when set, which row-level security binds), creates a throwaway org and key on
the business plan, then measures, in one run:
  * single `POST /api/v1/feedback` latency (auth, rate limit, inference, insert): p50/p99, on a
    kept-alive connection (as a platform's proxy holds) and on a fresh one, interleaved;
  * batch ingest through `POST /api/v1/feedback/batch` with 1,000-item batches: items/s.
Prints a table; never asserts (machines here are shared and noisy).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess  # nosec B404 # the benchmark starts its own server
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [
    "Ang bagal ng wifi sa library, hindi kami makapag-research.",
    "The new enrollment portal is so much faster than last year, thank you!",
    "Maayo kaayo mutudlo si Ma'am Santos, klaro kaayo ang iyang pagpasabot.",
    "Sobrang init sa room 204, sira pa rin yung aircon since August.",
    "When will the grades for the first quarter be posted?",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup() -> str:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "saas.settings")
    django.setup()
    from django.core.management import call_command

    from tenants import services

    call_command("migrate", verbosity=0)
    from tenants.models import User

    suffix = uuid.uuid4().hex[:8]
    owner = User.objects.create_user(f"bench-{suffix}@puna.local", None)
    org = services.org_create(name=f"Bench {suffix}", owner=owner, plan="business")
    _, raw = services.api_key_create(org=org, name="bench", scope="write", created_by=owner)
    return raw


def _request(
    port: int,
    key: str,
    path: str,
    body: object,
    *,
    conn: http.client.HTTPConnection | None = None,
    server_ms: list[float] | None = None,
) -> tuple[int, float]:
    """One POST, timed from the request to the last byte. Without ``conn`` it opens (and times)
    a fresh TCP connection; with one it reuses it, as a platform's proxy keeps its connections
    to gunicorn alive. ``server_ms`` collects the app's own total from ``Server-Timing``."""
    fresh = conn is None
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = json.dumps(body)
    start = time.perf_counter()
    conn.request(
        "POST",
        path,
        payload,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - start
    if server_ms is not None:
        timing = response.getheader("Server-Timing") or ""
        total = [p for p in timing.split(",") if p.strip().startswith("total;dur=")]
        if total:
            server_ms.append(float(total[0].split("=")[1]))
    if fresh:
        conn.close()
    return response.status, elapsed


def _single_posts(
    port: int, key: str, count: int = 500
) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[float]]:
    """Interleaved, so drift in machine load hits both alike: a POST on a kept-alive connection,
    then one on a fresh connection (TCP setup included). Returns both series and the app's own
    times of the first."""
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    server_ms: list[float] = []
    kept, fresh = [], []
    for i in range(count):
        text = SAMPLES[i % len(SAMPLES)]
        kept.append(
            _request(
                port,
                key,
                "/api/v1/feedback",
                {"text": f"{text} #k{i}"},
                conn=keep,
                server_ms=server_ms,
            )
        )
        fresh.append(_request(port, key, "/api/v1/feedback", {"text": f"{text} #f{i}"}))
    keep.close()
    return kept, fresh, server_ms


def _print_table(
    ok_kept: list[float],
    ok_fresh: list[float],
    server_ms: list[float],
    *,
    failed_singles: int,
    items_per_s: float,
    failed_batches: int,
) -> None:
    print("\nIngestion through gunicorn + PostgreSQL (loopback)")
    print(f"{'measure':<44}{'value':>14}")
    for label, lat in (("kept-alive connection", ok_kept), ("fresh connection", ok_fresh)):
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        print(f"{'single POST, ' + label + ', p50 (ms)':<44}{p50:>14.2f}")
        print(f"{'single POST, ' + label + ', p99 (ms)':<44}{p99:>14.2f}")
    if server_ms:
        in_app = statistics.median(server_ms)
        print(f"{'  of which in the app (Server-Timing), p50':<44}{in_app:>14.2f}")
    print(f"{'single POST non-201 responses':<44}{failed_singles:>14}")
    print(f"{'batch ingest, 1000-item batches (items/s)':<44}{items_per_s:>14.0f}")
    print(f"{'batch requests failed':<44}{failed_batches:>14}")


def main() -> int:
    env = {
        **os.environ,
        "PUNA_ENV": os.environ.get("PUNA_ENV", "test"),
        "SECURE_SSL_REDIRECT": "false",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
    }
    os.environ.update({k: v for k, v in env.items() if k in ("PUNA_ENV",)})
    # The throwaway org and key are made as the tables' owner (migrate needs it, and no org is
    # active here for row-level security); gunicorn then connects as DATABASE_APP_USER when it
    # is set, as in production.
    os.environ["DB_AS_OWNER"] = "1"
    env.pop("DB_AS_OWNER", None)
    key = _setup()
    port = _free_port()
    env["PORT"] = str(port)
    log_path = ROOT / ".data" / "bench-gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("wb")
    server = subprocess.Popen(  # nosec B603 # argv list: this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "gunicorn",
            "saas.wsgi:application",
            "-c",
            "deploy/gunicorn.conf.py",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        for _ in range(200):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        # Warm up every worker (models load once per process).
        for i in range(40):
            _request(port, key, "/api/v1/feedback", {"text": SAMPLES[i % len(SAMPLES)]})

        kept, fresh, server_ms = _single_posts(port, key)
        singles = kept + fresh
        ok_kept = sorted(t for status, t in kept if status == 201)
        ok_fresh = sorted(t for status, t in fresh if status == 201)
        if not ok_kept or not ok_fresh:
            statuses = sorted({status for status, _ in singles})
            print(f"every POST failed; statuses: {statuses}; server log: {log_path}")
            return 1
        ok = ok_kept + ok_fresh

        batches = 20
        bodies = [
            {"items": [{"text": f"{SAMPLES[j % 5]} batch {b} item {j}"} for j in range(1000)]}
            for b in range(batches)
        ]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(
                pool.map(lambda body: _request(port, key, "/api/v1/feedback/batch", body), bodies)
            )
        wall = time.perf_counter() - start
        stored_ok = sum(1 for status, _ in results if status == 200)
        items_per_s = stored_ok * 1000 / wall

        _print_table(
            ok_kept,
            ok_fresh,
            server_ms,
            failed_singles=len(singles) - len(ok),
            items_per_s=items_per_s,
            failed_batches=batches - stored_ok,
        )
        print(f"(targets: p50 <= 5 ms; batch >= 10,000 items/s; workers={env['WEB_CONCURRENCY']})")
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
