"""PostgreSQL restarted under sustained ingest: 503 + Retry-After meanwhile, never a 500 or a
hang, recovery without help, and every acknowledged item in the database afterwards."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from django.conf import settings

from tests.reliability.conftest import OWNER_EMAIL, OWNER_PASSWORD, Stack
from tests.reliability.servers import gunicorn, wait_for

pytestmark = pytest.mark.faults

# (connect, read) seconds. PostgreSQL's connect timeout (5 s) and statement timeout (20 s) are
# what bound a request server-side; a client that waits longer than this means a hang.
CLIENT_TIMEOUT = (3.0, 15.0)
SENDERS = 4
DOWN_SECONDS = 3.0
BACKOFF_SECONDS = 0.2
TEXTS = (
    "Ang bagal ng wifi sa library, hindi makapag-research",
    "Great teachers, but the canteen queue is too long",
    "Nindot kaayo ang klase ni Sir, salamat kaayo",
    "Sobrang init sa room 204, sira ang aircon",
)


@dataclass(frozen=True)
class Outcome:
    at: float  # when the request was sent (monotonic)
    external_id: str
    status: int | None
    retry_after: str | None = None
    content_type: str = ""
    id: int | None = None
    code: str = ""
    error: str = ""


def _post(session: requests.Session, url: str, external_id: str, n: int) -> Outcome:
    sent = time.monotonic()
    try:
        response = session.post(
            f"{url}/api/v1/feedback",
            json={"text": f"{TEXTS[n % len(TEXTS)]} ({n})", "external_id": external_id},
            timeout=CLIENT_TIMEOUT,
        )
    except requests.RequestException as exc:
        return Outcome(sent, external_id, None, error=repr(exc))
    body: dict[str, Any] = response.json()
    return Outcome(
        at=sent,
        external_id=external_id,
        status=response.status_code,
        retry_after=response.headers.get("Retry-After"),
        content_type=response.headers.get("Content-Type", ""),
        id=body.get("id") if response.status_code in (200, 201) else None,
        code=str(body.get("code", "")),
    )


def _login(url: str) -> requests.Session:
    browser = requests.Session()
    browser.get(f"{url}/login/", timeout=10)
    response = browser.post(
        f"{url}/login/",
        data={
            "username": OWNER_EMAIL,
            "password": OWNER_PASSWORD,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    return browser


def test_database_restart_during_ingest_answers_503_and_loses_no_acknowledged_item(
    private_stack: Stack, tmp_path: Path
) -> None:
    env = private_stack.env(
        REDIS_URL=settings.REDIS_URL,
        CACHE_KEY_PREFIX="puna-faults-restart",
        FREE_RATE="100000/m",
        FREE_ITEMS="10000000",
        LOG_FORMAT="json",
        MONITORING_FLUSH_SECONDS="2",  # the background flusher runs through the outage too
    )
    outcomes: list[Outcome] = []
    stop = threading.Event()

    with gunicorn(env, tmp_path / "gunicorn.log") as web:
        browser = _login(web.url)
        assert browser.get(f"{web.url}/o/{private_stack.org_slug}/", timeout=10).status_code == 200

        def sender(n: int) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {private_stack.api_key}"
            i = 0
            while not stop.is_set():
                outcome = _post(session, web.url, f"s{n}-{i}", i)
                outcomes.append(outcome)
                i += 1
                if outcome.status == 503:  # back off, less than Retry-After asks: keep pressing
                    time.sleep(BACKOFF_SECONDS)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(4)
            private_stack.pg.stop()
            stopped_at = time.monotonic()
            ready_down = requests.get(f"{web.url}/readyz", timeout=CLIENT_TIMEOUT)
            page_down = browser.get(
                f"{web.url}/o/{private_stack.org_slug}/", timeout=CLIENT_TIMEOUT
            )
            time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - stopped_at)))
            private_stack.pg.start()
            started_at = time.monotonic()
            first_201 = wait_for(
                lambda: min(
                    (o.at for o in outcomes if o.at > started_at and o.status == 201), default=0
                ),
                timeout=30,
                what="a 201 after PostgreSQL came back",
            )
            time.sleep(3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        ready_up = requests.get(f"{web.url}/readyz", timeout=CLIENT_TIMEOUT)
        page_up = browser.get(f"{web.url}/o/{private_stack.org_slug}/", timeout=CLIENT_TIMEOUT)

        # A client honouring Retry-After sends each refused item again: stored once, never twice.
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {private_stack.api_key}"
        refused = [o for o in outcomes if o.status != 201]
        retried = [_post(session, web.url, o.external_id, n) for n, o in enumerate(refused)]
        log = web.process.output()

    statuses: dict[Any, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    created = [o for o in outcomes if o.status == 201]
    unavailable = [o for o in outcomes if o.status == 503]
    print(
        f"\nPostgreSQL restart: {len(outcomes)} requests from {SENDERS} threads, "
        f"{len(created)}x201, {len(unavailable)}x503 (all with Retry-After), "
        f"other {sorted((k, v) for k, v in statuses.items() if k not in (201, 503))}; "
        f"database down {started_at - stopped_at:.1f} s; first 201 "
        f"{first_201 - started_at:.1f} s after it was back; "
        f"{len(retried)} refused items sent again: "
        f"{sum(r.status == 201 for r in retried)}x201, {sum(r.status == 200 for r in retried)}x200"
    )

    # Every request was answered in time, with a 201 or a 503 that says when to retry.
    assert [o.error for o in outcomes if o.error] == []
    assert set(statuses) <= {201, 503}, statuses
    assert unavailable, "the outage was never observed"
    for o in unavailable:
        assert o.retry_after is not None
        assert int(o.retry_after) > 0
        assert o.content_type == "application/problem+json"
        assert o.code == "database_unavailable"
    assert "WORKER TIMEOUT" not in log
    # gunicorn's access log agrees: the only 5xx it wrote were 503s.
    assert set(re.findall(r'HTTP/1\.1" (5\d\d) ', log)) <= {"503"}
    # The health check and a dashboard page said so too, and recovered.
    assert ready_down.status_code == 503
    assert ready_down.json()["checks"]["database"] == "unavailable"
    assert page_down.status_code == 503
    assert page_down.headers["Content-Type"].startswith("text/html")
    assert int(page_down.headers["Retry-After"]) > 0
    assert ready_up.status_code == 200
    assert page_up.status_code == 200

    # Every acknowledged item is in the database, under the id the client was given.
    acknowledged = {o.id for o in created}
    assert len(acknowledged) == len(created)
    stored = private_stack.pg.query(
        "SELECT id, external_id FROM feedback_feedback WHERE id = ANY(%s)", [list(acknowledged)]
    )
    assert {row[0] for row in stored} == acknowledged
    assert {row[1] for row in stored} == {o.external_id for o in created}
    # And after the retries, every item sent is stored exactly once.
    assert {r.status for r in retried} <= {200, 201}
    rows = private_stack.pg.query(
        "SELECT external_id, count(*) FROM feedback_feedback GROUP BY external_id"
    )
    assert {row[0] for row in rows} == {o.external_id for o in outcomes}
    assert {row[1] for row in rows} == {1}


def test_a_request_stuck_behind_a_lock_answers_503_at_the_lock_timeout(
    private_stack: Stack, tmp_path: Path
) -> None:
    """The statement/lock timeout policy: a request waiting on a row that something else holds
    gives up with a 503 after DB_LOCK_TIMEOUT instead of hanging until gunicorn's timeout."""
    env = private_stack.env(
        CACHE_KEY_PREFIX="puna-faults-lock", FREE_RATE="100000/m", FREE_ITEMS="10000000",
        DB_LOCK_TIMEOUT="2",
    )  # fmt: skip
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {private_stack.api_key}"
    with gunicorn(env, tmp_path / "gunicorn.log") as web:
        assert _post(session, web.url, "lock-0", 0).status == 201  # this month's usage row
        with psycopg.connect(private_stack.pg.url()) as holder:
            # What a long report query or a stuck migration holding the org's usage row does.
            holder.execute("SELECT * FROM feedback_usageperiod FOR UPDATE")
            stuck = _post(session, web.url, "lock-1", 1)
            waited = time.monotonic() - stuck.at
        after = _post(session, web.url, "lock-2", 2)
    print(
        f"\nrow lock held: answered {stuck.status} {stuck.code} after {waited:.1f} s "
        f"(DB_LOCK_TIMEOUT=2), Retry-After {stuck.retry_after}; after release {after.status}"
    )
    assert stuck.error == ""  # answered, within the client's 15 s
    assert stuck.status == 503
    assert stuck.code == "database_unavailable"
    assert stuck.retry_after is not None
    assert after.status == 201
    assert private_stack.pg.query(
        "SELECT external_id FROM feedback_feedback WHERE external_id LIKE 'lock-%%' ORDER BY 1"
    ) == [("lock-0",), ("lock-2",)]
