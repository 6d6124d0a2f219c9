"""`python -m feedback.bench`: the ingestion API through the full stack.

Starts gunicorn (deploy/gunicorn.conf.py) on a free loopback port against DATABASE_URL, creates
a throwaway org and key on the business plan, then measures, in one run:
  * single `POST /api/v1/feedback` latency (auth, rate limit, inference, insert): p50/p99;
  * batch ingest through `POST /api/v1/feedback/batch` with 1,000-item batches: items/s.
Prints a table; never asserts (machines here are shared and noisy).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
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


def _request(port: int, key: str, path: str, body: object) -> tuple[int, float]:
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
    conn.close()
    return response.status, elapsed


def main() -> int:
    env = {
        **os.environ,
        "PUNA_ENV": os.environ.get("PUNA_ENV", "test"),
        "SECURE_SSL_REDIRECT": "false",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
    }
    os.environ.update({k: v for k, v in env.items() if k in ("PUNA_ENV",)})
    key = _setup()
    port = _free_port()
    env["PORT"] = str(port)
    log_path = ROOT / ".data" / "bench-gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("wb")
    server = subprocess.Popen(
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

        singles = [
            _request(port, key, "/api/v1/feedback", {"text": f"{SAMPLES[i % 5]} #{i}"})
            for i in range(500)
        ]
        ok = [t for status, t in singles if status == 201]
        if not ok:
            statuses = sorted({status for status, _ in singles})
            print(f"every POST failed; statuses: {statuses}; server log: {log_path}")
            return 1
        lat = sorted(ok)
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000

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

        print("\nIngestion through gunicorn + PostgreSQL (loopback)")
        print(f"{'measure':<44}{'value':>14}")
        print(f"{'single POST /feedback p50 (ms)':<44}{p50:>14.2f}")
        print(f"{'single POST /feedback p99 (ms)':<44}{p99:>14.2f}")
        print(f"{'single POST non-201 responses':<44}{len(singles) - len(ok):>14}")
        print(f"{'batch ingest, 1000-item batches (items/s)':<44}{items_per_s:>14.0f}")
        print(f"{'batch requests failed':<44}{batches - stored_ok:>14}")
        print(f"(targets: p50 <= 5 ms; batch >= 10,000 items/s; workers={env['WEB_CONCURRENCY']})")
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
