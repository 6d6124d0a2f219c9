"""`python -m deploy.loadtest`: start Puna the production way on loopback and put it under load.

    python -m deploy.loadtest            # every scenario, about 6 minutes
    python -m deploy.loadtest --quick    # a smoke run: short steps, every scenario, ~2 minutes
    python -m deploy.loadtest --only ingest --rate 150   # confirm one rate for 60 s

Scenarios (config.py): single-item ingest (a rate search in 15 s steps, then 60 s at the best
rate, which must hold p99 <= 100 ms with zero 5xx), 1,000-item batches, API reads, dashboard
pages as signed-in members, and a mix, from several orgs on the business plan with two keys
each. Prints a table per scenario and writes everything, raw figures included, to
.data/loadtest/<run>.json (logs of every process in .data/loadtest/<run>/).

Exit status: 0 when the sustained ingest rate was confirmed and no request anywhere got a 5xx,
1 when the run finished but a target was missed, 2 when the stack could not be started.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from loadtest import config
from loadtest.report import exit_status, scenario_report
from loadtest.stack import PACKAGE_PATH, ROOT, Stack, StackError, say, stop

OUT_DIR = ROOT / ".data" / "loadtest"
LOCUSTFILE = ROOT / "deploy" / "loadtest" / "locustfile.py"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.loadtest", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run with short steps (about 2 minutes)"
    )
    parser.add_argument(
        "--only",
        default=",".join(config.SCENARIOS),
        help=f"comma-separated scenarios to run, of {','.join(config.SCENARIOS)}",
    )
    parser.add_argument("--rate", type=float, help="skip the search: confirm this ingest rate")
    parser.add_argument("--mixed-rate", type=float, help="ingest rate in the mixed scenario")
    parser.add_argument("--orgs", type=int, default=5, help="orgs to seed (2 keys each)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration")
    parser.add_argument("--web-workers", type=int, help="WEB_CONCURRENCY (default: the config's)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for web and worker, e.g. GUNICORN_MAX_REQUESTS=0 (repeatable; "
        "a departure from production, recorded in the results)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="a PostgreSQL server to create the test database on (default: $DATABASE_URL, "
        "else the embedded PostgreSQL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", ""),
        help="Redis for rate-limit counters (default: $REDIS_URL, else a private redis-server)",
    )
    args = parser.parse_args(argv)
    args.only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    return args


class Machine:
    """Samples the 1-minute load average and CPU busy share while scenarios run."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def loadavg() -> float:
        return float(Path("/proc/loadavg").read_text().split()[0])

    @staticmethod
    def cpu_ticks() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            self.points.append((time.monotonic(), self.loadavg()))

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def between(self, start: float, end: float) -> dict[str, float]:
        values = [v for t, v in self.points if start <= t <= end] or [self.loadavg()]
        return {"loadavg_max": max(values), "loadavg_mean": round(sum(values) / len(values), 2)}


def _warm_up(stack: Stack, orgs: list[dict[str, Any]]) -> int:
    """Load the models in every web worker and give each org some data to read; items stored."""
    stored = 0

    def batch(index: int) -> int:
        org = orgs[index % len(orgs)]
        items = [
            {"text": f"{config.TEXTS[(index + j) % len(config.TEXTS)]} [warm {index}-{j}]"}
            for j in range(config.BATCH_SIZE)
        ]
        status, body = stack.request(
            "POST", "/api/v1/feedback/batch", key=org["keys"][0], body={"items": items}
        )
        if status != 200:
            raise StackError(f"warm-up batch answered {status}: {body[:300]!r}")
        return int(json.loads(body)["created"])

    def single(index: int) -> int:
        org = orgs[index % len(orgs)]
        text = f"{config.TEXTS[index % len(config.TEXTS)]} [warm single {index}]"
        status, body = stack.request(
            "POST", "/api/v1/feedback", key=org["keys"][index % 2], body={"text": text}
        )
        if status != 201:
            raise StackError(f"warm-up POST answered {status}: {body[:300]!r}")
        return 1

    with ThreadPoolExecutor(max_workers=4) as pool:
        stored += sum(pool.map(batch, range(len(orgs))))
        stored += sum(pool.map(single, range(80)))
    return stored


def _run_locust(
    stack: Stack, scenario: config.Scenario, orgs: list[dict[str, Any]], workdir: Path
) -> dict[str, Any]:
    settings_path = workdir / f"{scenario.name}.config.json"
    out_path = workdir / f"{scenario.name}.samples.json"
    settings_path.write_text(
        json.dumps({"scenario": config.to_json(scenario), "orgs": orgs, "out": str(out_path)})
    )
    settings_path.chmod(0o600)  # it holds the run's API keys and password
    env = {
        **os.environ,
        "PYTHONPATH": PACKAGE_PATH,
        "PUNA_LOADTEST_CONFIG": str(settings_path),
    }
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        stack.base_url,
        "--only-summary",
        "--stop-timeout",
        "10",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with (workdir / f"locust-{scenario.name}.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=_expected_seconds(scenario) + 90)
        except subprocess.TimeoutExpired:
            say(f"{scenario.name}: locust overran its time box; stopping it")
        finally:
            stop(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not out_path.exists():
        raise StackError(f"locust wrote no results; see {workdir}/locust-{scenario.name}.log")
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["generator_cpu_seconds"] = round(
        (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1
    )
    return result


def _expected_seconds(scenario: config.Scenario) -> float:
    if scenario.load is not None:
        return scenario.load.seconds + 5
    search = scenario.search
    assert search is not None  # noqa: S101 - validated
    confirms = (1 + search.confirm_retries) * (search.confirm_seconds + search.pause_seconds + 2)
    steps = 0 if scenario.fixed_rate else search.max_steps * (search.step_seconds + 1)
    return steps + search.pause_seconds + confirms


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _seed(stack: Stack, orgs: int) -> list[dict[str, Any]]:
    say(f"seed: {orgs} orgs on the business plan, 2 API keys and a member each")
    password = os.urandom(12).hex()
    out = stack.run(
        "seed",
        [sys.executable, "-m", "loadtest.seed", str(orgs)],
        stdin=password + "\n",
        path=PACKAGE_PATH,
    )
    seeded: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    return seeded


def _mixed_after_search(
    scenario: config.Scenario, args: argparse.Namespace, output: dict[str, Any]
) -> config.Scenario:
    """The mixed scenario ingests at half the sustained rate the search found, if it ran."""
    found = output["scenarios"].get("ingest", {}).get("sustained_rate")
    if scenario.name != "mixed" or args.mixed_rate is not None or not found:
        return scenario
    return config.plan(
        quick=args.quick,
        keys=args.orgs * 2,
        orgs=args.orgs,
        only=("mixed",),
        mixed_rate=max(5, 5 * math.floor(found / 10)),
        scale=args.scale,
    )[0]


def _run_scenarios(
    *,
    stack: Stack,
    scenarios: list[config.Scenario],
    orgs: list[dict[str, Any]],
    args: argparse.Namespace,
    output: dict[str, Any],
    workdir: Path,
) -> int:
    """Each scenario in turn, reported as it ends; the feedback items acknowledged."""
    machine = Machine()
    machine.start()
    acknowledged = 0
    try:
        for planned in scenarios:
            scenario = _mixed_after_search(planned, args, output)
            say(f"scenario {scenario.name}")
            started = time.monotonic()
            busy0, total0 = Machine.cpu_ticks()
            log0 = stack.server_log_counts()
            result = _run_locust(stack, scenario, orgs, workdir)
            busy1, total1 = Machine.cpu_ticks()
            log1 = stack.server_log_counts()
            report = scenario_report(scenario, result)
            report["gunicorn_log"] = {k: log1[k] - log0[k] for k in log1}
            report["machine"] = {
                **machine.between(started, time.monotonic()),
                "cpu_busy_percent": round(100 * (busy1 - busy0) / max(total1 - total0, 1)),
                "generator_cpu_seconds": result["generator_cpu_seconds"],
                "wall_seconds": round(time.monotonic() - started, 1),
            }
            print(
                "  machine: load average (1 min) max {loadavg_max}, mean {loadavg_mean}; "
                "CPU busy {cpu_busy_percent}%; locust used {generator_cpu_seconds} "
                "CPU-seconds of {wall_seconds} s".format(**report["machine"])
                + "; gunicorn workers (re)booted: {workers_booted}, worker timeouts: "
                "{worker_timeouts}".format(**report["gunicorn_log"])
            )
            acknowledged += sum(int(row[4]) for row in result["samples"] if row[5])
            output["scenarios"][scenario.name] = report
            time.sleep(2)  # let queues drain between scenarios
    finally:
        machine.close()
    return acknowledged


def _after(stack: Stack, acknowledged: int) -> dict[str, Any]:
    """Whether every acknowledged item is stored, what the worker and gunicorn went through."""
    stored = stack.query("SELECT count(*) FROM feedback_feedback")[0][0]
    jobs = dict(stack.query("SELECT status, count(*) FROM procrastinate_jobs GROUP BY 1"))
    return {
        "items_acknowledged": acknowledged,
        "items_stored": stored,
        "background_jobs": jobs,
        "emails_sent": stack.mail.messages,
        "gunicorn_log": stack.server_log_counts(),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    workdir = OUT_DIR / run_id
    scenarios = config.plan(
        quick=args.quick,
        keys=args.orgs * 2,
        orgs=args.orgs,
        only=args.only,
        rate=args.rate,
        mixed_rate=args.mixed_rate,
        scale=args.scale,
    )
    for scenario in scenarios:
        config.validate(scenario)
    signal.signal(signal.SIGTERM, _on_sigterm)
    began = time.monotonic()
    output: dict[str, Any] = {
        "run": run_id,
        "cpus": os.cpu_count(),
        "options": {k: v for k, v in vars(args).items() if not k.endswith("_url")},
        "scenarios": {},
    }
    try:
        with Stack(
            workdir,
            database_url=args.database_url or None,
            redis_url=args.redis_url or None,
            web_workers=args.web_workers,
            extra_env=dict(item.split("=", 1) for item in args.env),
        ) as stack:
            stack.start()
            orgs = _seed(stack, args.orgs)
            say("warm-up: a 1,000-item batch per org and 80 single items")
            warm_items = _warm_up(stack, orgs)
            output["stack"] = {
                **stack.facts,
                "web": "gunicorn -c deploy/gunicorn.conf.py (gthread), "
                f"WEB_CONCURRENCY={stack.env.get('WEB_CONCURRENCY', 'config default (2)')}",
                "proxy": "X-Forwarded-Proto: https and X-Forwarded-For sent by the load "
                "generator; TRUSTED_PROXY_COUNT=1",
            }
            print(json.dumps(output["stack"], indent=2))
            acknowledged = _run_scenarios(
                stack=stack,
                scenarios=scenarios,
                orgs=orgs,
                args=args,
                output=output,
                workdir=workdir,
            )
            output["after"] = _after(stack, warm_items + acknowledged)
            print("\nafter the run: " + json.dumps(output["after"]))
    except StackError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadtest: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        output["wall_seconds"] = round(time.monotonic() - began, 1)
        if output["scenarios"]:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path = OUT_DIR / f"{run_id}.json"
            path.write_text(json.dumps(output, indent=1, default=str))
            (OUT_DIR / "latest.json").write_text(path.read_text())
            print(f"\nresults: {path.relative_to(ROOT)}; logs: {workdir.relative_to(ROOT)}/")
    return exit_status(output)
