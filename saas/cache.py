"""Cache backends for the counters behind rate limits.

Rate-limit counters must be shared between processes and incremented atomically. Redis gives
both; without Redis we use PostgreSQL. When Redis is unreachable we do not fail requests and we
do not stop limiting: counting falls back to a per-process in-memory cache (limits become
per-process, i.e. looser by the number of workers) until Redis answers again.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.db import connections, router
from django.utils import timezone

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class AtomicDatabaseCache(DatabaseCache):
    """Django's database cache, with counters that are exact and cheap.

    Rate limiting calls `add` then `incr` on every request. Django's versions take several
    statements each (a full `COUNT(*)` of the table on every add, and a read-modify-write incr
    that loses updates under concurrency). Integers are stored here as plain decimal text, so
    `add` is one `INSERT … ON CONFLICT` and `incr` one atomic `UPDATE … RETURNING`. Other values
    are pickled as Django does; a pickle in base64 never looks like a decimal number.
    """

    def _table_sql(self) -> tuple[Any, str]:
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        return connection, connection.ops.quote_name(self._table)  # type: ignore[attr-defined]

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        if type(value) is not int:
            return bool(super().add(key, value, timeout, version))
        key = self.make_and_validate_key(key, version=version)
        expires = _expiry(self.get_backend_timeout(timeout))
        connection, table = self._table_sql()
        with connection.cursor() as cursor:
            # Inserts a new key, or replaces one that has expired; a live key is left alone.
            cursor.execute(
                f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s) "  # noqa: S608  # nosec B608 # table: quote_name(setting); values are params
                f"ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, "
                f"expires = EXCLUDED.expires WHERE {table}.expires < %s RETURNING 1",
                [key, str(value), expires, timezone.now()],
            )
            return cursor.fetchone() is not None

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        if type(value) is not int:
            super().set(key, value, timeout, version)
            return
        key = self.make_and_validate_key(key, version=version)
        expires = _expiry(self.get_backend_timeout(timeout))
        connection, table = self._table_sql()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s) "  # noqa: S608  # nosec B608 # table: quote_name(setting); values are params
                f"ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value, "
                f"expires = EXCLUDED.expires",
                [key, str(value), expires],
            )

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        connection, table = self._table_sql()
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET value = (value::bigint + %s)::text "  # noqa: S608  # nosec B608 # table: quote_name(setting); values are params
                f"WHERE cache_key = %s AND expires >= %s AND value ~ '^-?[0-9]+$' "
                f"RETURNING value",
                [delta, key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            raise ValueError(f"Key '{key}' not found")
        return int(row[0])

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version=version)
        connection, table = self._table_sql()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT value, expires FROM {table} WHERE cache_key = %s",  # noqa: S608  # nosec B608 # table: quote_name(setting); values are params
                [made],
            )
            row = cursor.fetchone()
        if row is None or row[1] < timezone.now():
            return default
        if _INT_TEXT.match(row[0]):
            return int(row[0])
        return super().get(key, default, version)


_INT_TEXT = re.compile(r"^-?[0-9]+$")


def _expiry(timeout: float | None) -> datetime.datetime:
    if timeout is None:
        return datetime.datetime.max.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromtimestamp(timeout, tz=datetime.UTC).replace(microsecond=0)


# INCRBY only if the key exists (so an expired rate-limit window is not revived without its TTL).
_INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false
"""


class _ReusingRedisCacheClient(RedisCacheClient):
    """Django's client builds a `redis.Redis` per cache operation, and building one fills a
    170-entry case-insensitive callbacks table (about 100 µs, twice per rate-limited request).
    A `redis.Redis` is only a thread-safe handle on its connection pool, so one per pool does."""

    # Django's own helpers, which django-stubs leaves out (annotations only: no new attributes).
    _get_connection_pool_index: Callable[[bool], int]
    _get_connection_pool: Callable[[bool], Any]
    _client: Callable[..., Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._incr_scripts: dict[int, Any] = {}

    def incr(self, key: Any, delta: int) -> Any:
        """Django's contract (ValueError for a missing key) in one round trip instead of two
        (EXISTS, then INCRBY): the rate limiter increments on every API request."""
        index = self._get_connection_pool_index(True)
        script = self._incr_scripts.get(index)
        if script is None:
            script = self._incr_scripts[index] = self.get_client(key, write=True).register_script(
                _INCR_EXISTING
            )
        value = script(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(
                connection_pool=self._get_connection_pool(write)
            )
        return client


class FailoverRedisCache(RedisCache):
    """Redis cache that degrades to a process-local cache while Redis is unreachable."""

    retry_after_seconds = 5.0

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingRedisCacheClient
        # Django builds one cache object per thread; LocMemCache shares its storage (and lock)
        # between instances of the same name, so naming it after the server gives one set of
        # counters per process, as documented, instead of one per thread.
        self._fallback = LocMemCache(f"failover-{server}", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self.degraded:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except _REDIS_ERRORS as exc:
                with self._lock:
                    if not self.degraded:
                        logger.warning("Redis unreachable (%s); using per-process cache.", exc)
                    self._down_until = time.monotonic() + self.retry_after_seconds
        return getattr(self._fallback, name)(*args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._call("add", *args, **kwargs))

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get", *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> None:
        self._call("set", *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._call("touch", *args, **kwargs))

    def delete(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._call("delete", *args, **kwargs))

    def incr(self, *args: Any, **kwargs: Any) -> int:
        return int(self._call("incr", *args, **kwargs))

    def get_many(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(self._call("get_many", *args, **kwargs))

    def set_many(self, *args: Any, **kwargs: Any) -> list[Any]:
        return list(self._call("set_many", *args, **kwargs))

    def delete_many(self, *args: Any, **kwargs: Any) -> None:
        self._call("delete_many", *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._call("has_key", *args, **kwargs))

    def clear(self) -> None:
        self._call("clear")
