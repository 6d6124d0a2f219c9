"""Redis goes away under a running API: requests keep being served and limits stay in force,
counted per process (README: "Redis unreachable"), until Redis is back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
import requests

from tests.reliability.conftest import OWNER_EMAIL, Stack
from tests.reliability.servers import PrivateRedis, gunicorn, wait_for

pytestmark = pytest.mark.faults

WORKERS = 2
API_RATE = 20  # per minute per key
LOGIN_RATE = 10  # per minute per address and per email
TIMEOUT = (3.0, 10.0)


def _ingest(url: str, key: str, n: int) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/feedback",
        json={"text": f"Kulang ang upuan sa gym ({n})"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )


def _login_attempt(browser: requests.Session, url: str) -> requests.Response:
    return browser.post(
        f"{url}/login/",
        data={
            "username": OWNER_EMAIL,
            "password": "not-the-password",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        timeout=TIMEOUT,
        allow_redirects=False,
    )


def test_api_serves_and_limits_still_hold_while_redis_is_down(
    private_stack: Stack, tmp_path: Path
) -> None:
    cache = PrivateRedis()
    cache.start()
    env = private_stack.env(
        REDIS_URL=cache.url,
        WEB_CONCURRENCY=str(WORKERS),
        FREE_RATE=f"{API_RATE}/m",
        FREE_ITEMS="1000000",
        LOGIN_RATE=f"{LOGIN_RATE}/m",
    )
    try:
        with gunicorn(env, tmp_path / "gunicorn.log") as web:
            before = _ingest(web.url, private_stack.api_key, 0)
            assert before.status_code == 201
            assert int(before.headers["X-RateLimit-Remaining"]) == API_RATE - 1
            assert redis.Redis.from_url(cache.url).dbsize() > 0  # counting in Redis

            cache.kill()
            # Served: the first request after Redis died is answered, and so are the next ones,
            # until the per-process counters reach the plan's rate. Then 429s, as documented:
            # at most WORKERS x API_RATE requests get through in the window.
            during = [_ingest(web.url, private_stack.api_key, n) for n in range(1, 61)]
            statuses = [r.status_code for r in during]
            assert statuses[0] == 201
            assert set(statuses) == {201, 429}
            assert statuses.count(201) <= WORKERS * API_RATE
            assert all(int(r.headers["Retry-After"]) > 0 for r in during if r.status_code == 429)

            # Sign-in floods are still refused: by the documented bound, not after it.
            browser = requests.Session()
            browser.get(f"{web.url}/login/", timeout=TIMEOUT)
            attempts = [_login_attempt(browser, web.url).status_code for _ in range(30)]
            assert attempts[0] == 200  # the form again, with an error
            assert 429 in attempts[: WORKERS * LOGIN_RATE + 1]
            assert set(attempts) == {200, 429}

            # Redis back: counting returns to it within the failover's retry interval (5 s).
            cache.start()
            wait_for(
                lambda: (
                    _ingest(web.url, private_stack.api_key, 0).status_code in (201, 429)
                    and redis.Redis.from_url(cache.url).dbsize() > 0
                ),
                timeout=20,
                what="rate-limit counters back in Redis",
                every=1,
            )
            log = web.process.output()
    finally:
        cache.kill()

    assert "Redis unreachable" in log
    assert not re.findall(r'HTTP/1\.1" 5\d\d ', log)
    print(
        f"\nRedis down: {len(during)} API requests, {statuses.count(201)}x201, "
        f"{statuses.count(429)}x429 (limit {API_RATE}/min x {WORKERS} processes), 0x5xx; "
        f"{len(attempts)} bad sign-ins: first 429 at attempt {attempts.index(429) + 1} "
        f"(limit {LOGIN_RATE}/min x {WORKERS} processes)"
    )
