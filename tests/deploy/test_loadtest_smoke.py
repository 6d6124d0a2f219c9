"""`make loadtest` (deploy/loadtest/) holds together: its scenarios are valid, its arithmetic is
right, and its locustfile really drives every scenario against a stand-in server.

No database and no gunicorn: a few seconds of locust against a stub that answers like Puna
(HTTPS redirect without the proxy header, CSRF on sign-in, sessions on dashboard pages). The
full run is `make loadtest`; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))

from loadtest import config, stats  # noqa: E402
from loadtest.report import scenario_report  # noqa: E402

ORGS = [
    {
        "slug": f"org-{n}",
        "email": f"load{n}@loadtest.puna.local",
        "password": "pw",
        "keys": [f"key-{n}-a", f"key-{n}-b"],
    }
    for n in (1, 2)
]
API_KEYS = {key for org in ORGS for key in org["keys"]}
Reply = tuple[int, object, dict[str, str]]


def test_every_plan_validates_and_stays_time_boxed():
    for quick in (True, False):
        scenarios = config.plan(quick=quick, keys=10, orgs=5)
        assert [s.name for s in scenarios] == list(config.SCENARIOS)
        for scenario in scenarios:
            config.validate(scenario)
            assert config.from_json(config.to_json(scenario)) == scenario
    full = config.plan(quick=False, keys=10, orgs=5)
    search = full[0].search
    assert search is not None
    assert search.confirm_seconds == 60
    assert search.max_rate <= 10 * config.BUSINESS_RATE_PER_KEY
    load_seconds = sum(s.load.seconds for s in full if s.load is not None)
    worst_ingest = search.max_steps * search.step_seconds + 2 * search.confirm_seconds
    assert load_seconds + worst_ingest <= 6 * 60


def test_plan_refuses_unknown_scenarios_and_bad_loads():
    with pytest.raises(ValueError, match="unknown scenarios"):
        config.plan(quick=True, keys=2, orgs=1, only=("soak",))
    bad = config.Scenario(name="x", title="x", load=config.Load(5, {"NoSuchUser": 1}))
    with pytest.raises(ValueError, match="unknown user class"):
        config.validate(bad)


def test_paced_clients_offer_the_rate():
    assert config.users_for_rate(100, 2.0) == (50, 2.0)
    users, pace = config.users_for_rate(45, 2.0)
    assert users == 23
    assert users * pace == pytest.approx(45)


def test_rate_search_doubles_then_bisects_to_the_highest_passing_rate():
    search = stats.RateSearch(config.Search(start_rate=40, max_rate=400, max_steps=6))
    capacity = 130
    tried = []
    rate: float | None = search.first()
    while rate is not None:
        tried.append(rate)
        rate = search.record(rate, rate <= capacity)
    assert tried == [40, 80, 160, 120, 140, 130]
    assert search.best == 130


def test_rate_search_stops_at_the_ceiling_when_everything_passes():
    search = stats.RateSearch(config.Search(start_rate=40, max_rate=100, max_steps=6))
    tried = []
    rate: float | None = search.first()
    while rate is not None:
        tried.append(rate)
        rate = search.record(rate, True)
    assert tried == [40, 80, 100]
    assert search.best == 100


def test_summary_counts_errors_by_status_and_judges_the_target():
    samples = [stats.Sample(i / 100, 10.0, 201, "POST", 1, True) for i in range(98)]
    samples += [
        stats.Sample(0.98, 250.0, 503, "POST", 0, False),
        stats.Sample(0.99, 300.0, 429, "POST", 0, False),
    ]
    summary = stats.summarize(samples, 1.0)
    assert summary["requests"] == 100
    assert summary["items"] == 98
    assert summary["errors_by_status"] == {"429": 1, "503": 1}
    assert summary["server_errors"] == 1
    assert summary["p50_ms"] == 10.0
    assert summary["p99_ms"] == 250.0
    passed, reasons = stats.verdict(summary, target_rate=100)
    assert not passed
    assert len(reasons) == 3  # p99, a 5xx, another error


class StubPuna(BaseHTTPRequestHandler):
    """Answers like Puna behind its proxy, for the paths the locustfile uses."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: object, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _cookie(self, name: str) -> str:
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return ""

    def _authorized(self) -> bool:
        return (self.headers.get("Authorization") or "").removeprefix("Bearer ") in API_KEYS

    def _get(self) -> Reply:
        url = urlsplit(self.path)
        if url.path == "/login/":
            return 200, {}, {"Set-Cookie": "csrftoken=tok; Secure; Path=/"}
        if url.path.startswith("/o/"):
            signed_in = self._cookie("sessionid") == "sess"
            return (200, {}, {}) if signed_in else (302, {}, {"Location": "/login/"})
        if not self._authorized():
            return 401, {}, {}
        if url.path == "/api/v1/feedback":
            cursor = "cursor" in parse_qs(url.query)
            link = None if cursor else "https://127.0.0.1/api/v1/feedback?cursor=abc"
            return 200, {"next": link, "results": []}, {}
        return (200, {"total": 0}, {}) if url.path == "/api/v1/stats" else (404, {}, {})

    def _sign_in(self, body: bytes) -> Reply:
        form = parse_qs(body.decode())
        good = (
            self._cookie("csrftoken") == "tok"
            and form.get("csrfmiddlewaretoken") == ["tok"]
            and (self.headers.get("Origin") or "").startswith("https://")
        )
        if not good:
            return 403, {}, {}
        return 302, {}, {"Location": "/", "Set-Cookie": "sessionid=sess; Secure; HttpOnly"}

    def _post(self, body: bytes) -> Reply:
        if self.path == "/login/":
            return self._sign_in(body)
        if not self._authorized():
            return 401, {}, {}
        if self.path == "/api/v1/feedback":
            return 201, {"id": 1}, {}
        if self.path == "/api/v1/feedback/batch":
            created = len(json.loads(body)["items"])
            return 200, {"created": created, "existing": 0, "results": []}, {}
        return 404, {}, {}

    def _behind_proxy(self) -> bool:
        if self.headers.get("X-Forwarded-Proto") == "https":
            return True
        self._reply(301, {}, {"Location": "https://example/"})  # production's HTTPS redirect
        return False

    def do_GET(self) -> None:
        if self._behind_proxy():
            self._reply(*self._get())

    def do_POST(self) -> None:
        body = self._body()
        if self._behind_proxy():
            self._reply(*self._post(body))


@pytest.fixture
def stub_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubPuna)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _start_locust(scenario: config.Scenario, host: str, workdir: Path) -> subprocess.Popen[bytes]:
    settings = workdir / f"{scenario.name}.json"
    settings.write_text(
        json.dumps(
            {
                "scenario": config.to_json(scenario),
                "orgs": ORGS,
                "out": str(workdir / f"{scenario.name}.out.json"),
            }
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "deploy"),
        "PUNA_LOADTEST_CONFIG": str(settings),
    }
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "deploy/loadtest/locustfile.py")]
    argv += ["--headless", "--host", host, "--only-summary", "--stop-timeout", "3"]
    argv += ["--exit-code-on-error", "0", "--loglevel", "WARNING"]
    log = (workdir / f"{scenario.name}.log").open("wb")
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_locustfile_drives_every_scenario_against_a_stub(stub_url, tmp_path, capsys):
    mixed = config.Scenario(
        name="mixed",
        title="all four kinds of client",
        load=config.Load(
            3.0,
            {"IngestUser": 2, "BatchUser": 1, "ReadUser": 1, "DashboardUser": 2},
            {"IngestUser": 5.0, "BatchUser": None, "ReadUser": None, "DashboardUser": None},
        ),
    )
    ingest = config.Scenario(
        name="ingest",
        title="a two-step search and a short confirmation",
        search=config.Search(
            start_rate=10,
            step_seconds=2,
            max_steps=2,
            pause_seconds=1,
            confirm_seconds=2,
            confirm_retries=0,
            per_user_rate=5,
        ),
    )
    procs = {s.name: _start_locust(s, stub_url, tmp_path) for s in (mixed, ingest)}
    for name, proc in procs.items():
        try:
            proc.wait(timeout=60)
        finally:
            proc.kill()
        log = (tmp_path / f"{name}.log").read_text()
        assert proc.returncode == 0, log

    mixed_out = json.loads((tmp_path / "mixed.out.json").read_text())
    samples = [stats.Sample.from_row(row) for row in mixed_out["samples"]]
    assert [s for s in samples if not s.ok] == []
    names = {s.name for s in samples}
    assert {"GET /login/", "POST /login/", "POST /api/v1/feedback"} <= names
    assert "POST /api/v1/feedback/batch" in names
    assert any(name.startswith("GET /api/v1/") for name in names)
    assert any(name.startswith("GET /o/[org]/") for name in names)
    assert {s.items for s in samples if s.name == "POST /api/v1/feedback/batch"} == {1000}
    assert scenario_report(mixed, mixed_out)["summary"]["server_errors"] == 0

    # The search's course depends on this machine's speed; its shape does not.
    ingest_out = json.loads((tmp_path / "ingest.out.json").read_text())
    phases = ingest_out["phases"]
    assert phases[0]["kind"] == "step"
    assert phases[0]["rate"] == 10
    steps = [p for p in phases if p["kind"] == "step"]
    assert all("passed" in p and p["summary"]["requests"] > 0 for p in steps)
    confirms = [p for p in phases if p["kind"] == "confirm"]
    if any(p["passed"] for p in steps):
        best = max(p["rate"] for p in steps if p["passed"])
        assert confirms[0]["rate"] == best
        assert "passed" in confirms[0]
    else:
        assert confirms == []
    report = scenario_report(ingest, ingest_out)
    assert report["sustained_offered_rate"] in {None, *(p["rate"] for p in confirms)}
    assert "ingest:" in capsys.readouterr().out
