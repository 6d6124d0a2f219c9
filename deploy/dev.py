"""`make run`: migrate, load the demo org, start web + worker, print how to get in.

Uses DATABASE_URL when set; otherwise starts the embedded PostgreSQL (deploy/devdb.py) and
stops it again on exit. Ctrl-C stops everything.

As in production (deploy/release.sh), migrations run as the tables' owner and everything else as
the app role, which row-level security binds: on the embedded server that is `puna_app`,
created here; with your own DATABASE_URL, set DATABASE_APP_USER/DATABASE_APP_PASSWORD to do
the same (without them the app connects as DATABASE_URL's user).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess  # nosec B404 # the dev runner starts our own processes
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))

import devdb  # noqa: E402


def _port(preferred: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manage(*args: str, capture: bool = False, as_owner: bool = False) -> str:
    result = subprocess.run(  # nosec B603 # argv list: this interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        env={**os.environ, "DB_AS_OWNER": "1"} if as_owner else None,
    )
    return result.stdout or ""


def main() -> int:
    started_db = False
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = devdb.start()
        started_db = True
        os.environ.setdefault("DATABASE_APP_USER", devdb.APP_USER)
        os.environ.setdefault("DATABASE_APP_PASSWORD", devdb.APP_PASSWORD)
    os.environ.setdefault("PUNA_ENV", "development")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _manage("migrate", "--noinput", "-v", "0", as_owner=True)
        _manage("db_app_role", capture=True, as_owner=True)
        _manage("sync_models", capture=True)
        demo = _manage("seed_demo", capture=True)
        port = _port(int(os.environ.get("PORT", "8000")))
        procs.append(
            subprocess.Popen(  # nosec B603 # argv list: this interpreter and manage.py
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
            )
        )
        procs.append(
            subprocess.Popen([sys.executable, "manage.py", "procrastinate", "worker"], cwd=ROOT)  # nosec B603 # fixed argv
        )
        url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "readyz", timeout=1):  # noqa: S310  # nosec B310 # http://127.0.0.1 built above
                    break
            except OSError:
                time.sleep(0.2)
        print(
            "\n"
            "  Puna is running\n"
            f"  URL:      {url}\n"
            f"  Sign up:  {url}signup/\n"
            + "".join(f"  {line}\n" for line in demo.strip().splitlines())
            + f"  API docs: {url}api/v1/docs\n"
            "  Ctrl-C to stop.\n",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if started_db:
            devdb.stop()


if __name__ == "__main__":
    sys.exit(main())
