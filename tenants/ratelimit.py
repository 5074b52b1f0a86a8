"""Fixed-window rate limits shared by every web process.

Three backends, none keeping state in process memory: Redis when REDIS_URL is set; else,
on PostgreSQL, the database's (unlogged) RateLimitWindow table; on SQLite, a SQLite file
of its own beside the database (core/windowcounts.py), so that counting a request never
waits for the application database's one write lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from core.windowcounts import WindowCounts
from tenants.models import RateLimitWindow

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateLimitResult:
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def allowed(self) -> bool:
        return self.remaining >= 0

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
        }


# One statement for all of a request's keys, on SQLite (3.35+) as on PostgreSQL: the upsert
# counts atomically and answers the new counts, where update-then-select took four round
# trips and a transaction per key.
_UPSERT = (
    'INSERT INTO {table} ("key", "window_start", "count") VALUES {rows} '
    'ON CONFLICT ("key", "window_start") DO UPDATE SET "count" = {table}."count" + 1 '
    'RETURNING "key", "count"'
)


def _db_hits(keys: list[str], window_start: int) -> dict[str, int]:
    table = connection.ops.quote_name(RateLimitWindow._meta.db_table)
    rows = ", ".join(["(%s, %s, 1)"] * len(keys))
    params = [value for key in keys for value in (key, window_start)]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(table=table, rows=rows), params)
        counts = {key: int(count) for key, count in cursor.fetchall()}
    fresh = [key for key, count in counts.items() if count == 1]
    if fresh:  # the first hit of a window clears the key's older windows
        RateLimitWindow.objects.filter(key__in=fresh, window_start__lt=window_start).delete()
    return counts


_stores: dict[Path, WindowCounts] = {}
_stores_lock = threading.Lock()


def sqlite_store() -> WindowCounts:
    """The counts' file for the default SQLite database: `<its file>-ratelimit`.

    Derived from the database's path when asked, so that every process on one database
    (web processes, a test's server, a benchmark's) shares one file, and a test database
    gets its own.
    """
    path = Path(f"{connection.settings_dict['NAME']}-ratelimit")
    store = _stores.get(path)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(path, WindowCounts(path))
    return store


def create_sqlite_store(*, using: str = "default", **_: object) -> None:
    """post_migrate: `migrate` creates the counts' file along with the database."""
    if using == "default" and settings.RATE_LIMIT_BACKEND == "sqlite":
        sqlite_store().ensure()


def _sqlite_hits(keys: list[str], window_start: int) -> dict[str, int]:
    return sqlite_store().hit(keys, window_start)


_clients = threading.local()


def _redis_client():  # type: ignore[no-untyped-def]
    # One client per thread: gunicorn's threads sharing one client got "Bad file
    # descriptor" (500s) when they opened its first connections at the same moment.
    client = getattr(_clients, "client", None)
    if client is None:
        import redis

        client = _clients.client = redis.Redis.from_url(settings.REDIS_URL)
    return client


def _redis_hits(keys: list[str], window_start: int) -> dict[str, int]:
    pipe = _redis_client().pipeline()
    for key in keys:
        name = f"bunch:rl:{key}:{window_start}"
        pipe.incr(name)
        pipe.expire(name, WINDOW_SECONDS * 2)
    replies = pipe.execute()
    return {key: int(replies[2 * i]) for i, key in enumerate(keys)}


_BACKENDS: dict[str, Callable[[list[str], int], dict[str, int]]] = {
    "redis": _redis_hits,
    "database": _db_hits,
    "sqlite": _sqlite_hits,
}


def hit_many(
    keys: list[str], limit: int, *, clock: Callable[[], float] = time.time
) -> dict[str, RateLimitResult]:
    """Count one request against each of `keys` (one round trip) and say what is left."""
    now = clock()
    window_start = int(now // WINDOW_SECONDS * WINDOW_SECONDS)
    backend = _BACKENDS[settings.RATE_LIMIT_BACKEND]
    counts = backend(list(dict.fromkeys(keys)), window_start)
    reset = max(1, int(window_start + WINDOW_SECONDS - now + 0.999))
    return {
        key: RateLimitResult(limit=limit, remaining=limit - counts[key], reset_seconds=reset)
        for key in keys
    }


def hit(key: str, limit: int, *, clock: Callable[[], float] = time.time) -> RateLimitResult:
    """Count one request against `key` and say how much of the window is left."""
    return hit_many([key], limit, clock=clock)[key]
