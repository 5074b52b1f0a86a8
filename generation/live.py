"""News of job changes, pushed to the web processes that wait for them.

A `Prefer: wait` request and an event stream (`…/events`) wait for a job or a batch to
change without holding a worker thread: they `await` a `Watch`, which the process's one
listener wakes. Where the news comes from depends on what the deployment has:

- Redis (`REDIS_URL` set): the writer publishes on a channel once its transaction commits;
  each web process holds one subscription.
- PostgreSQL: the writer issues `NOTIFY` inside its transaction, which PostgreSQL delivers
  when (and only if) it commits; each web process holds one `LISTEN` connection.
- SQLite (one host): nothing is sent. Each web process polls the rows of the jobs it
  watches, all of them in one query every `POLL_S`, on the event loop's thread pool.

A wake-up means "look again", never "this is the new state": the waiter re-reads the row,
so a lost or repeated message costs at most latency, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count

logger = logging.getLogger(__name__)

POLL_S = 0.25  # SQLite: how often the watched jobs' rows are read
QUIET_S = 1.0  # SQLite: a batch watch has no poller; its watcher looks again this often
RECONNECT_S = 1.0


def channel() -> str:
    return str(getattr(settings, "BUNCH_LIVE_CHANNEL", "bunch_jobs"))


def backend() -> str:
    if settings.REDIS_URL:
        return "redis"
    return "postgres" if connection.vendor == "postgresql" else "poll"


# Writers ---------------------------------------------------------------------------------


def jobs_changed(*, job_ids: Iterable[Any], batch_ids: Iterable[Any] = ()) -> None:
    """Call inside the transaction that changed these jobs (status, a stored image)."""
    keys = [f"job:{i}" for i in job_ids] + [f"batch:{i}" for i in set(batch_ids) if i]
    keys_changed(keys=keys)


def keys_changed(*, keys: Iterable[str]) -> None:
    """News for watchers of these keys (`job:<id>`, `batch:<id>`, `series:<id>`); call inside
    the transaction that made the change."""
    payloads = _payloads(list(keys))
    if not payloads:
        return
    kind = backend()
    if kind == "redis":
        transaction.on_commit(lambda: _redis_publish(payloads))
    elif kind == "postgres":
        with connection.cursor() as cursor:  # delivered at COMMIT, dropped on ROLLBACK
            if len(payloads) == 1:
                cursor.execute("SELECT pg_notify(%s, %s)", [channel(), payloads[0]])
            else:
                cursor.execute(
                    "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", [channel(), payloads]
                )


# PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more ("payload string too long"):
# a claim of 200 jobs is 8,200 bytes of keys. Keys are ASCII; a message holds whole keys.
PAYLOAD_MAX_BYTES = 7900


def _payloads(keys: list[str]) -> list[str]:
    """`keys` space-separated in messages of at most PAYLOAD_MAX_BYTES each."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = 0
    for key in keys:
        if chunk and size + 1 + len(key) > PAYLOAD_MAX_BYTES:
            payloads.append(" ".join(chunk))
            chunk, size = [], 0
        size += len(key) + (1 if chunk else 0)
        chunk.append(key)
    if chunk:
        payloads.append(" ".join(chunk))
    return payloads


def jobs_claimed(job_ids: list[Any]) -> None:
    """Call after the commit of a claim: these jobs are now `running`. One message for the
    whole claim (and their batches'), so an event stream shows `running` at once instead
    of at its next look; on SQLite the web's poll finds the change by itself."""
    if not job_ids or backend() == "poll":
        return
    from generation.models import Job

    batch_ids = (
        Job.objects.filter(pk__in=job_ids, batch__isnull=False)
        .values_list("batch_id", flat=True)
        .distinct()
    )
    jobs_changed(job_ids=job_ids, batch_ids=list(batch_ids))


_redis_clients: dict[str, Any] = {}


def _redis_publish(payloads: list[str]) -> None:
    import redis

    url = settings.REDIS_URL
    try:
        client = _redis_clients.get(url)
        if client is None:
            client = _redis_clients[url] = redis.Redis.from_url(url)
        for payload in payloads:
            client.publish(channel(), payload)
    except redis.RedisError:  # a waiter then answers at its deadline or on its next look
        logger.warning("Could not publish a job change to Redis", exc_info=True)


# Waiters ---------------------------------------------------------------------------------


class Watch:
    """One waiter's interest in a key (`job:<id>` or `batch:<id>`)."""

    def __init__(self, hub: _Hub, key: str, seen: Any) -> None:
        self.hub = hub
        self.key = key
        self.seen = seen  # what the waiter last read; the SQLite poller wakes on a difference
        self._event = asyncio.Event()

    @property
    def polled(self) -> bool:
        """True when `seen` is the row as last read by the SQLite poll (a job watch)."""
        return self.hub.kind == "poll" and self.key.startswith("job:")

    def wake(self) -> None:
        self._event.set()

    async def changed(self, timeout: float) -> bool:
        """Wait up to `timeout` s for news; True if woken (look again), False if not."""
        if self.hub.kind == "poll" and not self.key.startswith("job:"):
            timeout = min(timeout, QUIET_S)
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    async def __aenter__(self) -> Watch:
        self.hub.add(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hub.remove(self)


def watch(key: str, seen: Any = None) -> Watch:
    """`async with watch("job:<id>", seen=job_version(...)) as w: … await w.changed(t)`.

    Subscribe first, then read: a change between the read and the wait still wakes.
    """
    return Watch(_hub(), key, seen)


def job_version(status: str, images: int) -> tuple[str, int]:
    return (str(status), int(images))


class _Hub:
    """The watches of one event loop and the one task that wakes them."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.watches: dict[str, set[Watch]] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, w: Watch) -> None:
        self.watches.setdefault(w.key, set()).add(w)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, w: Watch) -> None:
        group = self.watches.get(w.key)
        if group is not None:
            group.discard(w)
            if not group:
                del self.watches[w.key]

    def wake(self, keys: Iterable[str]) -> None:
        for key in keys:
            for w in self.watches.get(key, ()):
                w.wake()

    def wake_all(self) -> None:
        for group in self.watches.values():
            for w in group:
                w.wake()

    async def _run(self) -> None:
        runner = {"redis": self._listen_redis, "postgres": self._listen_postgres}
        while self.watches:
            try:
                await runner.get(self.kind, self._poll)()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Job change listener failed; reconnecting", exc_info=True)
                self.wake_all()  # what was missed meanwhile is found by looking again
                await asyncio.sleep(RECONNECT_S)

    async def _poll(self) -> None:
        while self.watches:
            job_ids = [k[4:] for k in self.watches if k.startswith("job:")]
            if job_ids:
                versions = await sync_to_async(_read_versions, thread_sensitive=False)(job_ids)
                for key, version in versions.items():
                    for w in self.watches.get(key, ()):
                        if w.seen != version:
                            w.seen = version
                            w.wake()
            await asyncio.sleep(POLL_S)

    async def _listen_postgres(self) -> None:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(_postgres_conninfo(), autocommit=True)
        async with conn:
            await conn.execute(f'LISTEN "{channel()}"')
            self.wake_all()  # anything that changed before LISTEN took effect
            while self.watches:  # the generator ends at its timeout: listen on, or close
                async for notify in conn.notifies(timeout=QUIET_S * 5):
                    self.wake(notify.payload.split())

    async def _listen_redis(self) -> None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(channel())
            self.wake_all()
            while self.watches:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message and message.get("type") == "message":
                    self.wake(message["data"].decode().split())
            await pubsub.aclose()
        finally:
            await client.aclose()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub(backend())
    return hub


def _read_versions(job_ids: list[str]) -> dict[str, tuple[str, int]]:
    from generation.models import Job

    try:
        ids = [uuid.UUID(i) for i in job_ids]
        rows = (
            Job.objects.filter(pk__in=ids)
            .annotate(made=Count("images"))
            .values_list("pk", "status", "made")
        )
        return {f"job:{pk}": job_version(status, made) for pk, status, made in rows}
    finally:
        connections.close_all()  # a pool thread must not keep a connection per poll


def _postgres_conninfo() -> str:
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    parts = {
        "dbname": db.get("NAME"),
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
    }
    return make_conninfo(**{k: str(v) for k, v in parts.items() if v})
