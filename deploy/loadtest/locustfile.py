"""Locust users and the load shape for `python -m deploy.loadtest`; runs only inside locust.

The runner starts `locust -f deploy/loadtest/locustfile.py --headless` once per scenario, with
PUNA_LOADTEST_CONFIG naming a JSON file: the scenario (config.Scenario), the seeded orgs (slug,
API keys, a member's email and password) and where to write the results. Never import this
module from Django code: locust monkey-patches the standard library with gevent.

Every request carries what the platform's TLS-terminating proxy adds: `X-Forwarded-Proto:
https` (production redirects plain HTTP) and an `X-Forwarded-For` address per simulated client
(gunicorn runs with TRUSTED_PROXY_COUNT=1, so per-IP limits see many clients, not 127.0.0.1).
Each request becomes a stats.Sample; the shape decides the single-ingest search steps from them
while the test runs.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from locust import FastHttpUser, LoadTestShape, User, events, task

from loadtest import config
from loadtest.stats import RateSearch, Sample, achieved_rate, summarize, verdict, window

CONFIG_ENV = "PUNA_LOADTEST_CONFIG"


def _load() -> dict[str, Any]:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: run `python -m deploy.loadtest`.")
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


SETTINGS = _load()
SCENARIO = config.from_json(SETTINGS["scenario"])
ORGS: list[dict[str, Any]] = SETTINGS["orgs"]
KEYS: list[str] = [key for org in ORGS for key in org["keys"]]

SAMPLES: list[Sample] = []
# Requests still waiting for an answer, by user: a step is judged before they all return.
INFLIGHT: dict[int, float] = {}
PHASES: list[dict[str, Any]] = []
# Each user class's pace in requests per second (None: back to back); the shape sets it.
PACE: dict[str, float | None] = {}
CLOCK = {"t0": time.perf_counter(), "epoch": time.time()}
_clients = itertools.count()
_texts = itertools.count()


def _now() -> float:
    return time.perf_counter() - CLOCK["t0"]


def _text(tag: str) -> str:
    return f"{random.choice(config.TEXTS)} [{tag} {next(_texts)}]"  # noqa: S311


class PunaUser(FastHttpUser):
    """A client behind the platform's proxy, paced by PACE, that records every request."""

    abstract = True
    network_timeout = 35.0  # a little over gunicorn's 30 s worker timeout
    connection_timeout = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.number = next(_clients)
        self.proxy_headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": f"10.77.{self.number // 250}.{self.number % 250 + 1}",
        }
        self.next_at = 0.0
        # Cookies by hand: the client's cookie jar drops Django's on a bare-IP host.
        self.cookies: dict[str, str] = {}

    def pace(self) -> float | None:
        return PACE.get(type(self).__name__)

    def on_start(self) -> None:
        # A random phase, so paced clients spread out instead of firing together.
        pace = self.pace()
        if pace:
            time.sleep(random.uniform(0, 1 / pace))  # noqa: S311
        self.next_at = time.perf_counter()

    def wait_time(self) -> float:
        pace = self.pace()
        now = time.perf_counter()
        if not pace:
            self.next_at = now
            return 0.0
        interval = 1 / pace
        self.next_at += interval
        if self.next_at < now - interval:  # fell behind: carry on, do not burst to catch up
            self.next_at = now
        return max(0.0, self.next_at - now)

    def send(
        self,
        method: str,
        path: str,
        name: str,
        *,
        expect: tuple[int, ...] = (200,),
        items: Callable[[Any], int] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        sent = {**self.proxy_headers, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        INFLIGHT[id(self)] = started - CLOCK["t0"]
        try:
            response = self.client.request(method, path, name=name, headers=sent, **kwargs)
        finally:
            INFLIGHT.pop(id(self), None)
        ms = (time.perf_counter() - started) * 1000
        status = int(response.status_code or 0)
        if response.headers is not None:
            for raw in response.headers.getlist("set-cookie"):
                jar: SimpleCookie = SimpleCookie()
                jar.load(raw)
                self.cookies.update({k: m.value for k, m in jar.items()})
        ok = status in expect
        stored = 0
        if ok and items is not None:
            try:
                stored = items(response)
            except (ValueError, KeyError, TypeError):
                ok = False
        SAMPLES.append(Sample(started - CLOCK["t0"], ms, status, name, stored, ok))
        return response


class ApiUser(PunaUser):
    abstract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = KEYS[self.number % len(KEYS)]
        self.api_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def api(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        return self.send(method, path, name, headers=self.api_headers, **kwargs)


class IngestUser(ApiUser):
    """One item per request: the path every form and integration takes."""

    @task
    def ingest(self) -> None:
        body = {"text": _text(f"s{self.number}"), "source": random.choice(config.SOURCES)}  # noqa: S311
        self.api(
            "POST",
            "/api/v1/feedback",
            "POST /api/v1/feedback",
            data=json.dumps(body),
            expect=(201,),
            items=lambda _response: 1,
        )


def _created(response: Any) -> int:
    body = json.loads(response.content)
    return int(body["created"]) + int(body["existing"])


class BatchUser(ApiUser):
    """Full 1,000-item batches, as an integration catching up would send them."""

    def on_start(self) -> None:
        self.bodies = [
            json.dumps(
                {
                    "items": [
                        {
                            "text": _text(f"b{self.number}"),
                            "source": random.choice(config.SOURCES),  # noqa: S311
                        }
                        for _ in range(config.BATCH_SIZE)
                    ]
                }
            )
            for _ in range(2)
        ]
        super().on_start()

    @task
    def batch(self) -> None:
        self.api(
            "POST",
            "/api/v1/feedback/batch",
            "POST /api/v1/feedback/batch",
            data=random.choice(self.bodies),  # noqa: S311
            items=_created,
        )


class ReadUser(ApiUser):
    """A client listing, filtering, searching and paging feedback, and reading stats."""

    @task(3)
    def filtered(self) -> None:
        query = urlencode(
            {
                "sentiment": random.choice(config.SENTIMENTS),  # noqa: S311
                "q": random.choice(config.SEARCH_TERMS),  # noqa: S311
            }
        )
        self.api("GET", f"/api/v1/feedback?{query}", "GET /api/v1/feedback?sentiment&q")

    @task(2)
    def by_language(self) -> None:
        language = random.choice(config.LANGUAGES)  # noqa: S311
        self.api("GET", f"/api/v1/feedback?language={language}", "GET /api/v1/feedback?language")

    @task(2)
    def pages(self) -> None:
        response = self.api("GET", "/api/v1/feedback", "GET /api/v1/feedback")
        if response.status_code != 200:
            return
        link = json.loads(response.content).get("next")
        if link:
            # The link is absolute (https behind the proxy); follow its path on our host.
            parts = urlsplit(link)
            self.api("GET", f"{parts.path}?{parts.query}", "GET /api/v1/feedback?cursor")

    @task(2)
    def stats(self) -> None:
        self.api("GET", "/api/v1/stats", "GET /api/v1/stats")

    @task(1)
    def stats_weekly(self) -> None:
        self.api("GET", "/api/v1/stats?interval=week", "GET /api/v1/stats?interval=week")


class DashboardUser(PunaUser):
    """A member signed in with the login form, browsing their org's pages."""

    def on_start(self) -> None:
        org = ORGS[self.number % len(ORGS)]
        self.slug = org["slug"]
        origin = f"https://{urlsplit(str(self.host)).netloc}"
        self.send("GET", "/login/", "GET /login/")
        token = self.cookies.get("csrftoken", "")
        form = {"username": org["email"], "password": org["password"], "next": ""}
        self.send(
            "POST",
            "/login/",
            "POST /login/",
            data=urlencode({**form, "csrfmiddlewaretoken": token}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": origin,
                "Referer": f"{origin}/login/",
            },
            allow_redirects=False,
            expect=(302,),
        )
        super().on_start()

    def page(self, path: str, name: str) -> None:
        # A redirect here would be to the login page: count it as an error, do not follow it.
        self.send("GET", f"/o/{self.slug}/{path}", f"GET /o/[org]/{name}", allow_redirects=False)

    @task(3)
    def overview(self) -> None:
        self.page("", "")

    @task(1)
    def overview_quarter(self) -> None:
        self.page("?period=90", "?period=90")

    @task(2)
    def explorer(self) -> None:
        self.page("feedback/", "feedback/")

    @task(2)
    def explorer_filtered(self) -> None:
        term = random.choice(config.SEARCH_TERMS)  # noqa: S311
        self.page(f"feedback/?sentiment=negative&q={term}", "feedback/?sentiment&q")

    @task(1)
    def anomalies(self) -> None:
        self.page("anomalies/", "anomalies/")

    @task(1)
    def monitoring(self) -> None:
        self.page("monitoring/", "monitoring/")


CLASSES: dict[str, type[User]] = {
    "IngestUser": IngestUser,
    "BatchUser": BatchUser,
    "ReadUser": ReadUser,
    "DashboardUser": DashboardUser,
}
if SCENARIO.load is not None:
    # Exact counts per class for a steady load (locust otherwise splits by weight).
    for _name, _count in SCENARIO.load.users.items():
        CLASSES[_name].fixed_count = _count


def _judge(phase: dict[str, Any], end: float) -> dict[str, Any]:
    """Summary and verdict of a single-ingest phase from the samples of requests sent in
    [start, end), counting requests still unanswered as slow ones."""
    samples = window(SAMPLES, phase["start"], end)
    now = _now()
    samples += [
        Sample(start, (now - start) * 1000, 0, "in flight", 0, True)
        for start in list(INFLIGHT.values())
        if phase["start"] <= start < end
    ]
    summary = summarize(samples, end - phase["start"])
    achieved = achieved_rate(samples, phase["start"], end)
    passed, reasons = verdict(summary, phase["rate"], achieved)
    return {"summary": summary, "passed": passed, "reasons": reasons}


class ScenarioShape(LoadTestShape):
    """Runs the configured scenario: a rate search then confirmation, or one steady load."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.current: dict[str, Any] | None = None
        self.queue: list[dict[str, Any]] = []
        self.search: RateSearch | None = None
        self.retries = 0

    def _begin(self, phase: dict[str, Any]) -> None:
        now = _now()
        phase = {**phase, "start": now, "end": now + phase["seconds"]}
        if phase.get("rate"):
            assert SCENARIO.search is not None  # noqa: S101 - only search phases have a rate
            users, pace = config.users_for_rate(phase["rate"], SCENARIO.search.per_user_rate)
            phase["users"] = {"IngestUser": users}
            PACE["IngestUser"] = pace
        elif SCENARIO.load is not None:
            PACE.update(SCENARIO.load.rates)
        self.current = phase
        PHASES.append(phase)

    def _plan_first(self) -> None:
        CLOCK["t0"], CLOCK["epoch"] = time.perf_counter(), time.time()
        if SCENARIO.load is not None:
            users = {k: v for k, v in SCENARIO.load.users.items() if v}
            self._begin({"kind": "load", "seconds": SCENARIO.load.seconds, "users": users})
            self.queue = [{"kind": "drain", "seconds": 3.0, "users": {}}]
            return
        assert SCENARIO.search is not None  # noqa: S101 - validated by config
        if SCENARIO.fixed_rate:
            self._confirm(SCENARIO.fixed_rate)
        else:
            self.search = RateSearch(SCENARIO.search)
            rate = self.search.first()
            self._begin({"kind": "step", "rate": rate, "seconds": SCENARIO.search.step_seconds})

    def _confirm(self, rate: float) -> None:
        assert SCENARIO.search is not None  # noqa: S101
        seconds = SCENARIO.search.confirm_seconds
        self._begin({"kind": "confirm", "rate": rate, "seconds": seconds})
        # Let every answer come back before the run is judged.
        self.queue = [{"kind": "drain", "seconds": SCENARIO.search.pause_seconds, "users": {}}]

    def _after_step(self, done: dict[str, Any], search: config.Search) -> bool:
        assert self.search is not None  # noqa: S101
        # Requests of the last second may still be out: judge up to it, counting those.
        done.update(_judge(done, done["end"] - 1.0))
        nxt = self.search.record(done["rate"], done["passed"])
        if nxt is not None:
            self._begin({"kind": "step", "rate": nxt, "seconds": search.step_seconds})
            return True
        if self.search.best <= 0:
            return False
        # Let the last (failed) step's backlog clear before the sustained run.
        self._begin({"kind": "pause", "seconds": search.pause_seconds, "users": {}})
        self.queue = [{"kind": "confirm", "rate": self.search.best}]
        return True

    def _after_confirm(self, search: config.Search) -> bool:
        confirm = next(p for p in reversed(PHASES) if p["kind"] == "confirm")
        confirm.update(_judge(confirm, confirm["end"]))
        if confirm["passed"] or self.retries >= search.confirm_retries:
            return False
        self.retries += 1
        self._confirm(RateSearch.round_rate(confirm["rate"] * search.retry_factor))
        return True

    def _advance(self) -> bool:
        """Start the next phase; False when the scenario is over."""
        assert self.current is not None  # noqa: S101
        done = self.current
        search = SCENARIO.search
        if search is not None and done["kind"] == "step":
            return self._after_step(done, search)
        if search is not None and done["kind"] == "drain":
            return self._after_confirm(search)
        if not self.queue:
            return False
        nxt = self.queue.pop(0)
        if nxt["kind"] == "confirm":
            self._confirm(nxt["rate"])
        else:
            self._begin(nxt)
        return True

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        if self.current is None:
            self._plan_first()
        elif _now() >= self.current["end"] and not self._advance():
            return None
        assert self.current is not None  # noqa: S101
        users: dict[str, int] = self.current["users"]
        total = sum(users.values())
        classes = [CLASSES[name] for name in users] or [IngestUser]
        # Start or stop every client within a tenth of a second: a step is its rate at once.
        current = self.runner.user_count if self.runner is not None else 0
        return total, float(max(total, current, 1) * 10), classes


def _write_results(**_kwargs: Any) -> None:
    result = {
        "scenario": config.to_json(SCENARIO),
        # Wall-clock time of the samples' zero, to line them up with the servers' logs.
        "started_at": CLOCK["epoch"],
        "phases": PHASES,
        "samples": [s.row() for s in SAMPLES],
    }
    Path(SETTINGS["out"]).write_text(json.dumps(result))


events.quitting.add_listener(_write_results)  # type: ignore[no-untyped-call]
