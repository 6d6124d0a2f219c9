"""Rate-limit counters: exact on PostgreSQL, and still limiting when Redis goes away."""

from __future__ import annotations

import threading
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.cache.backends.base import BaseCache
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from saas.cache import AtomicDatabaseCache, FailoverRedisCache

DB_CACHE = "puna_cache_test"


def _database_cache(db_owner: Callable[[str], None]) -> AtomicDatabaseCache:
    """The PostgreSQL counter cache, with its table, whichever cache the settings configure
    (CI runs with Redis, where migrations create no cache table). The table's owner creates
    it; the app's role may only use it."""
    with override_settings(
        CACHES={"default": {"BACKEND": "saas.cache.AtomicDatabaseCache", "LOCATION": DB_CACHE}}
    ):
        sql = StringIO()
        call_command("createcachetable", dry_run=True, verbosity=0, stdout=sql)
    if sql.getvalue().strip():
        db_owner(sql.getvalue())
    return AtomicDatabaseCache(DB_CACHE, {})


@pytest.mark.django_db(transaction=True)
def test_database_cache_increments_atomically_across_threads(
    db_owner: Callable[[str], None],
) -> None:
    cache = _database_cache(db_owner)
    cache.set("counter", 0, 60)

    def bump() -> None:
        for _ in range(25):
            cache.incr("counter")
        connection.close()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("counter") == 100


def test_database_cache_incr_of_missing_key_raises_value_error(
    db: None, db_owner: Callable[[str], None]
) -> None:
    cache = _database_cache(db_owner)
    with pytest.raises(ValueError, match="not found"):
        cache.incr("never-set")


def _unreachable_redis() -> BaseCache:
    # Port 1 on loopback: connection refused at once.
    return FailoverRedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.2}})


def test_failover_cache_keeps_counting_in_process_when_redis_is_down() -> None:
    cache = _unreachable_redis()
    assert cache.add("hits", 1, 60) is True
    assert cache.incr("hits") == 2
    assert cache.get("hits") == 2
    assert cache.degraded  # type: ignore[attr-defined]


def test_failover_cache_uses_redis_when_it_is_up() -> None:
    redis_cache = FailoverRedisCache("redis://127.0.0.1:6379/15", {})
    try:
        redis_cache.set("probe", 1, 5)
    except Exception:  # pragma: no cover - machine without Redis
        pytest.skip("no Redis on 127.0.0.1:6379")
    assert not redis_cache.degraded
    assert redis_cache.incr("probe") == 2
    redis_cache.delete("probe")


def test_redis_incr_of_a_missing_key_raises_and_keeps_the_window() -> None:
    """One round trip (a script), same contract as Django's: a missing key is a ValueError and
    is not created; an existing key keeps its expiry."""
    import redis

    redis_cache = FailoverRedisCache("redis://127.0.0.1:6379/15", {})
    redis_cache.delete("window")
    with pytest.raises(ValueError, match="not found"):
        redis_cache.incr("window")
    assert redis_cache.get("window") is None
    assert redis_cache.add("window", 1, 30)
    assert redis_cache.incr("window", 4) == 5
    raw = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    assert 0 < raw.ttl(redis_cache.make_key("window")) <= 30
    redis_cache.delete("window")


def test_database_cache_add_only_sets_a_missing_or_expired_key(
    db: None, db_owner: Callable[[str], None]
) -> None:
    cache = _database_cache(db_owner)
    assert cache.add("window", 1, 60) is True
    assert cache.add("window", 1, 60) is False
    assert cache.incr("window", 5) == 6
    assert cache.get("window") == 6
    cache.set("window", 3, -1)  # already expired
    assert cache.get("window", "gone") == "gone"
    assert cache.add("window", 1, 60) is True
    cache.set("blob", {"a": [1, 2]}, 60)
    assert cache.get("blob") == {"a": [1, 2]}
    with pytest.raises(ValueError, match="not found"):
        cache.incr("blob")
