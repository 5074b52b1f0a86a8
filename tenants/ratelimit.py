"""Fixed-window rate limits shared by every web process.

The database backend needs nothing installed; the Redis backend is used when REDIS_URL is
set. Neither keeps state in process memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

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


# One statement per hit, on SQLite (3.35+) as on PostgreSQL: the upsert counts atomically and
# answers the new count, where update-then-select took four round trips and a transaction.
_UPSERT = (
    'INSERT INTO {table} ("key", "window_start", "count") VALUES (%s, %s, 1) '
    'ON CONFLICT ("key", "window_start") DO UPDATE SET "count" = {table}."count" + 1 '
    'RETURNING "count"'
)


def _db_hit(key: str, window_start: int) -> int:
    table = connection.ops.quote_name(RateLimitWindow._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(table=table), [key, window_start])
        count = int(cursor.fetchone()[0])
    if count == 1:  # the first hit of a window clears the key's older windows
        RateLimitWindow.objects.filter(key=key, window_start__lt=window_start).delete()
    return count


_clients = threading.local()


def _redis_client():  # type: ignore[no-untyped-def]
    # One client per thread: gunicorn's threads sharing one client got "Bad file
    # descriptor" (500s) when they opened its first connections at the same moment.
    client = getattr(_clients, "client", None)
    if client is None:
        import redis

        client = _clients.client = redis.Redis.from_url(settings.REDIS_URL)
    return client


def _redis_hit(key: str, window_start: int) -> int:
    name = f"bunch:rl:{key}:{window_start}"
    pipe = _redis_client().pipeline()
    pipe.incr(name)
    pipe.expire(name, WINDOW_SECONDS * 2)
    count, _ = pipe.execute()
    return int(count)


def hit(key: str, limit: int, *, clock: Callable[[], float] = time.time) -> RateLimitResult:
    """Count one request against `key` and say how much of the window is left."""
    now = clock()
    window_start = int(now // WINDOW_SECONDS * WINDOW_SECONDS)
    backend = _redis_hit if settings.RATE_LIMIT_BACKEND == "redis" else _db_hit
    count = backend(key, window_start)
    reset = max(1, int(window_start + WINDOW_SECONDS - now + 0.999))
    return RateLimitResult(limit=limit, remaining=limit - count, reset_seconds=reset)
