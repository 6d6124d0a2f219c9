"""The system under test, started the production way on loopback, and taken down again.

A database of its own (created on DATABASE_URL's server, or on the embedded PostgreSQL from
deploy/devdb.py) that is dropped at the end; Redis from REDIS_URL, else a private redis-server
when one is installed; the image's build step (collectstatic) and the release step
(deploy/release.sh: migrate, sync_models, check --deploy); gunicorn with deploy/gunicorn.conf.py
bound to 127.0.0.1; and a procrastinate worker. Every process runs in its own session and is
stopped by its process group, on success, error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
# This package is `loadtest` with deploy/ on the path (see __main__.py).
PACKAGE_PATH = str(ROOT / "deploy")
# What the app processes inherit from the caller; everything else is set here, so a developer's
# DEBUG, PUNA_ENV or rate settings cannot leak into the measurement.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SSL_CERT_FILE", "USER")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_BEGAN = time.monotonic()


def say(message: str) -> None:
    print(f"==> [{time.monotonic() - _BEGAN:5.0f} s] {message}", flush=True)


class StackError(RuntimeError):
    pass


class _SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: accepts every message and counts it."""

    server: MailSink

    def handle(self) -> None:
        self.wfile.write(b"220 puna-loadtest\r\n")
        in_data = False
        for line in self.rfile:
            if in_data:
                if line.rstrip(b"\r\n") == b".":
                    in_data = False
                    self.server.messages += 1
                    self.wfile.write(b"250 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            in_data = verb == b"DATA"
            self.wfile.write(b"354 go on\r\n" if in_data else b"250 ok\r\n")


class MailSink(socketserver.ThreadingTCPServer):
    """Production needs EMAIL_URL; alerts the load sets off are delivered here, not lost."""

    daemon_threads = True
    messages = 0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpSink)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Stack:
    """Use as a context manager; everything started inside is stopped on exit."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None,
        redis_url: str | None,
        web_workers: int | None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.database_url_given = database_url
        self.redis_url_given = redis_url
        self.web_workers = web_workers
        self.extra_env = extra_env or {}
        self.cleanup = contextlib.ExitStack()
        self.logs: list[IO[bytes]] = []
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.database_url = ""
        self.redis_url = ""
        self.port = 0
        self.env: dict[str, str] = {}
        self.facts: dict[str, Any] = {}
        self.mail: MailSink

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup.close()

    # --- processes ------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self.cleanup.callback(log.close)
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.cleanup.callback(stop, proc)
        self.processes[name] = proc
        return proc

    def run(self, name: str, argv: list[str], *, stdin: str | None = None, path: str = "") -> str:
        """Run a step to completion with the app's environment; its output goes to a log."""
        result = subprocess.run(
            argv,
            cwd=ROOT,
            env={**self.env, "PYTHONPATH": path} if path else self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        (self.workdir / f"{name}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise StackError(f"{name} failed (exit {result.returncode}):\n{tail}")
        return result.stdout

    # --- resources ------------------------------------------------------------------------

    def _database(self) -> str:
        admin_url = self.database_url_given
        if not admin_url:
            devdb = [sys.executable, str(ROOT / "deploy" / "devdb.py")]
            running = subprocess.run([*devdb, "url"], capture_output=True, check=False)
            admin_url = subprocess.run(
                [*devdb, "start"], capture_output=True, text=True, check=True
            ).stdout.strip()
            if running.returncode != 0:
                self.cleanup.callback(subprocess.run, [*devdb, "stop"], check=False)
            self.facts["postgres"] = "embedded (deploy/devdb.py)"
        else:
            self.facts["postgres"] = "DATABASE_URL's server"
        name = f"puna_loadtest_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            version = conn.execute("SHOW server_version").fetchone()
        self.facts["postgres"] += f", PostgreSQL {version[0] if version else '?'}"
        self.cleanup.callback(_drop_database, admin_url, name)
        return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))

    def _redis(self) -> str:
        if self.redis_url_given:
            self.facts["redis"] = "REDIS_URL"
            return self.redis_url_given
        server = shutil.which("redis-server")
        if server is None:
            self.facts["redis"] = "none: rate-limit counters in PostgreSQL (AtomicDatabaseCache)"
            return ""
        port = free_port()
        self.spawn(
            "redis",
            [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""],
            {k: os.environ[k] for k in INHERITED if k in os.environ},
        )
        self.facts["redis"] = f"private redis-server on 127.0.0.1:{port}"
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        say("database")
        self.database_url = self._database()
        self.redis_url = self._redis()
        self.port = free_port()
        self.mail = MailSink()
        self.cleanup.callback(self.mail.close)
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **{k: os.environ[k] for k in INHERITED if k in os.environ},
            # release.sh calls `python`: the virtualenv's.
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "DJANGO_SETTINGS_MODULE": "saas.settings",
            "PUNA_ENV": "production",
            "DEBUG": "false",
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "EMAIL_URL": f"smtp://127.0.0.1:{self.mail.port}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # As behind Render's or Railway's proxy: the client address is the last
            # X-Forwarded-For entry, which the load generator sets per simulated client.
            "TRUSTED_PROXY_COUNT": "1",
            "CACHE_KEY_PREFIX": f"puna-loadtest-{secrets.token_hex(4)}",
            "PORT": str(self.port),
        }
        if self.redis_url:
            self.env["REDIS_URL"] = self.redis_url
        if self.web_workers:
            self.env["WEB_CONCURRENCY"] = str(self.web_workers)
        self.env.update(self.extra_env)
        if self.extra_env:
            self.facts["extra_env"] = self.extra_env
        self._collectstatic()
        say("release step: deploy/release.sh (migrate, sync_models, check --deploy)")
        self.run("release", ["sh", "deploy/release.sh"])
        say("web: gunicorn -c deploy/gunicorn.conf.py on 127.0.0.1; worker: procrastinate")
        self.spawn(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "saas.wsgi:application",
                "-c",
                "deploy/gunicorn.conf.py",
                # The config binds every interface for the platforms; here, loopback only.
                "--bind",
                f"127.0.0.1:{self.port}",
            ],
            self.env,
        )
        self.spawn("worker", [sys.executable, "manage.py", "procrastinate", "worker"], self.env)
        self.wait_ready()
        self.facts["setup_seconds"] = round(time.perf_counter() - started, 1)

    def _collectstatic(self) -> None:
        """The image's build step. Hashing and compressing every file takes minutes on a busy
        machine, so it runs only when STATIC_ROOT lacks the manifest or a file is new."""
        collect = [sys.executable, "manage.py", "collectstatic", "--noinput"]
        dry = self.run("collectstatic-check", [*collect, "--dry-run"])
        match = re.search(r"(\d+) static files? copied", dry)
        manifest = ROOT / "staticfiles" / "staticfiles.json"
        if manifest.exists() and match is not None and match.group(1) == "0":
            say("build step: collectstatic is up to date")
            return
        say("build step: collectstatic (as the Dockerfile does; minutes on a busy machine)")
        self.run("collectstatic", collect)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise StackError(f"{name} exited with {proc.returncode}; see its log")
            with contextlib.suppress(OSError):
                status, _ = self.request("GET", "/readyz")
                if status == 200:
                    return
            time.sleep(0.3)
        raise StackError(f"gunicorn was not ready within {timeout:.0f} s")

    # --- talking to it --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, *, key: str = "", body: object = None, timeout: float = 60
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"X-Forwarded-Proto": "https", "Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return list(conn.execute(statement).fetchall())

    def server_log_counts(self) -> dict[str, int]:
        """What gunicorn's log says about worker restarts, timeouts and errors."""
        path = self.workdir / "gunicorn.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return {
            "workers_booted": text.count("Booting worker"),
            "worker_timeouts": text.count("WORKER TIMEOUT"),
            "tracebacks": text.count("Traceback"),
            "error_lines": sum(
                1 for line in text.splitlines() if '"level":"ERROR"' in line or "[ERROR]" in line
            ),
        }


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process group we started (gunicorn drains its workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
