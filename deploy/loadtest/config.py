"""What the load test runs: scenarios, their sizes, and what counts as holding up.

Plain data and arithmetic, no locust and no Django: the runner, the locustfile (which runs under
gevent) and the smoke test all import it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The target for sustained single-item ingest.
P99_TARGET_MS = 100.0
# A step only counts if the server kept up with the rate we offered, measured after the first
# RAMP_SECONDS (clients start at random points of their first interval).
MIN_ACHIEVED_SHARE = 0.9
RAMP_SECONDS = 0.5
# The business plan allows 3,000 requests a minute per API key; the search stays below the sum.
BUSINESS_RATE_PER_KEY = 3000 / 60
KEY_HEADROOM = 0.8

USER_CLASSES = ("IngestUser", "BatchUser", "ReadUser", "DashboardUser")
SCENARIOS = ("ingest", "batch", "reads", "dashboard", "mixed")
BATCH_SIZE = 1000

# Feedback as schools send it, in the languages Puna reads; a tag and a counter keep it varied.
TEXTS = (
    "Ang bagal ng wifi sa library, hindi kami makapag-research.",
    "The new enrollment portal is so much faster than last year, thank you!",
    "Maayo kaayo mutudlo si Ma'am Santos, klaro kaayo ang iyang pagpasabot.",
    "Sobrang init sa room 204, sira pa rin yung aircon since August.",
    "When will the grades for the first quarter be posted?",
    "The canteen food was cold again and the line was too long.",
    "Salamat sa mabilis na tulong ng registrar kanina.",
    "Hinay kaayo ang wifi sa classroom, dili maka-download sa module.",
    "The guards at the gate were very helpful during the typhoon.",
    "Grabe ang pila sa cashier, isang oras kami naghintay.",
    "Please fix the leaking roof in the gym before the intramurals.",
    "Nindot ang bag-ong library, hilom ug limpyo.",
)
SOURCES = ("api", "form", "sms", "kiosk")
# Filters the reads and dashboard scenarios use; every one matches some of TEXTS.
SEARCH_TERMS = ("wifi", "grades", "canteen", "aircon", "library")
SENTIMENTS = ("negative", "neutral", "positive")
LANGUAGES = ("en", "tl", "ceb")


@dataclass(frozen=True)
class Search:
    """Find the highest single-item ingest rate that holds, then hold it for `confirm_seconds`.

    Rates double from `start_rate` until a step fails (or `max_rate` is reached), then bisect
    between the best passing and the lowest failing rate.
    """

    start_rate: float = 40.0
    factor: float = 2.0
    max_rate: float = 400.0
    step_seconds: float = 15.0
    max_steps: int = 6
    # Stop bisecting once the bracket is this narrow relative to the best passing rate.
    resolution: float = 0.12
    pause_seconds: float = 5.0
    confirm_seconds: float = 60.0
    # A failed confirmation is retried this many times, each at retry_factor x the rate.
    confirm_retries: int = 1
    retry_factor: float = 0.85
    # Each simulated client sends at most this many requests a second, so a rate of R is
    # ceil(R / per_user_rate) clients with their own connections, like real senders.
    per_user_rate: float = 2.0


@dataclass(frozen=True)
class Load:
    """A steady load: `users` clients per user class for `seconds`.

    `rates` is each client's requests per second (paced, open loop) or None for back to back
    (closed loop: the next request leaves when the previous answers, so throughput is capacity).
    """

    seconds: float
    users: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    search: Search | None = None
    load: Load | None = None
    # A fixed rate skips the search and only confirms it.
    fixed_rate: float | None = None


def users_for_rate(rate: float, per_user_rate: float) -> tuple[int, float]:
    """How many paced clients offer `rate` requests a second, and each one's pace."""
    users = max(1, math.ceil(rate / per_user_rate - 1e-9))
    return users, rate / users


def key_ceiling(keys: int) -> float:
    """The highest single-ingest rate the plan limits let through, with headroom."""
    return keys * BUSINESS_RATE_PER_KEY * KEY_HEADROOM


def plan(
    *,
    quick: bool,
    keys: int,
    orgs: int,
    only: tuple[str, ...] = SCENARIOS,
    rate: float | None = None,
    mixed_rate: float | None = None,
    scale: float = 1.0,
) -> list[Scenario]:
    """The scenarios to run, in order. `scale` stretches every duration (e.g. 0.5 halves)."""
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if quick:
        search = Search(
            start_rate=20.0,
            step_seconds=5.0,
            max_steps=3,
            pause_seconds=2.0,
            confirm_seconds=10.0,
            confirm_retries=0,
        )
        seconds = {"batch": 8.0, "reads": 8.0, "dashboard": 8.0, "mixed": 10.0}
    else:
        search = Search()
        seconds = {"batch": 30.0, "reads": 30.0, "dashboard": 30.0, "mixed": 45.0}
    search = replace(
        search,
        max_rate=min(search.max_rate, key_ceiling(keys)),
        step_seconds=search.step_seconds * scale,
        confirm_seconds=search.confirm_seconds * scale,
    )
    seconds = {name: value * scale for name, value in seconds.items()}
    dashboards = min(orgs, 4)
    # Mixed traffic: ingest at half the found rate (paced), batches now and then, readers and
    # dashboard users at a human pace.
    ingest_rate = mixed_rate or 40.0
    ingest_users, ingest_pace = users_for_rate(ingest_rate, search.per_user_rate)
    all_scenarios = {
        "ingest": Scenario(
            name="ingest",
            title="single-item POST /api/v1/feedback: rate search, then a sustained run",
            search=search,
            fixed_rate=rate,
        ),
        "batch": Scenario(
            name="batch",
            title=f"POST /api/v1/feedback/batch, {BATCH_SIZE:,}-item batches, "
            "2 clients back to back",
            load=Load(seconds["batch"], {"BatchUser": 2}, {"BatchUser": None}),
        ),
        "reads": Scenario(
            name="reads",
            title="GET /api/v1/feedback (filters, search, next page) and /stats, 4 clients "
            "back to back",
            load=Load(seconds["reads"], {"ReadUser": 4}, {"ReadUser": None}),
        ),
        "dashboard": Scenario(
            name="dashboard",
            title=f"dashboard pages as signed-in members, {dashboards} clients back to back",
            load=Load(seconds["dashboard"], {"DashboardUser": dashboards}, {"DashboardUser": None}),
        ),
        "mixed": Scenario(
            name="mixed",
            title=f"mixed: ingest at {ingest_rate:g} req/s, a batch every 10 s, 2 readers at "
            "2 req/s, 2 dashboard users at 1 page/s",
            load=Load(
                seconds["mixed"],
                {"IngestUser": ingest_users, "BatchUser": 1, "ReadUser": 2, "DashboardUser": 2},
                {
                    "IngestUser": ingest_pace,
                    "BatchUser": 0.1,
                    "ReadUser": 2.0,
                    "DashboardUser": 1.0,
                },
            ),
        ),
    }
    return [all_scenarios[name] for name in SCENARIOS if name in only]


def validate(scenario: Scenario) -> None:
    """Raise ValueError when a scenario could not run as described."""
    if (scenario.search is None) == (scenario.load is None):
        raise ValueError(f"{scenario.name}: give exactly one of search and load")
    if scenario.search is not None:
        s = scenario.search
        if not 0 < s.start_rate <= s.max_rate:
            raise ValueError(f"{scenario.name}: start_rate must be in (0, max_rate]")
        if s.factor <= 1 or s.max_steps < 1 or s.step_seconds <= 0 or s.confirm_seconds <= 0:
            raise ValueError(f"{scenario.name}: factor > 1, max_steps >= 1, positive durations")
        if not 0 < s.retry_factor < 1 or s.per_user_rate <= 0:
            raise ValueError(f"{scenario.name}: retry_factor in (0, 1), per_user_rate > 0")
    if scenario.load is not None:
        load = scenario.load
        if load.seconds <= 0 or not load.users or sum(load.users.values()) < 1:
            raise ValueError(f"{scenario.name}: a load needs users and a positive duration")
        for name, count in load.users.items():
            if name not in USER_CLASSES or count < 0:
                raise ValueError(f"{scenario.name}: unknown user class or count {name}={count}")
            pace = load.rates.get(name)
            if pace is not None and pace <= 0:
                raise ValueError(f"{scenario.name}: {name} pace must be positive or None")


def to_json(scenario: Scenario) -> dict[str, Any]:
    return asdict(scenario)


def from_json(data: dict[str, Any]) -> Scenario:
    search = Search(**data["search"]) if data.get("search") else None
    load = Load(**data["load"]) if data.get("load") else None
    return Scenario(
        name=data["name"],
        title=data["title"],
        search=search,
        load=load,
        fixed_rate=data.get("fixed_rate"),
    )
