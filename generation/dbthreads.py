"""The database threads of a worker's event loop.

The runner's loop keeps hundreds of calls in flight, and each image needs a few short
statements: its plan, its store transaction, the job's finish. Run thread-sensitively
(`sync_to_async`'s default), all of them queue for the one thread that started the task and
its one connection: at 400 calls in flight that thread was busy all the time, and an answer
waited seconds to be stored (docs/performance.md, round 3). Here the loop's ORM work runs on
a small pool of threads instead, each with its own connection, so statements overlap their
round trips. Each unit of work is a whole function with its own transaction, so no
transaction spans two threads.

On SQLite one database file takes one writer at a time: there the loop keeps the task's own
thread, as before.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


def orm(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`fn` on the running loop's database threads (`current`), or, outside such a loop,
    on the thread that started it, as `sync_to_async` does by default."""
    threads = current.get()
    return threads(fn) if threads is not None else sync_to_async(fn)


def pool_size() -> int:
    """`BUNCH_WORKER_DB_THREADS` (default 1: no pool, the task's own thread).

    Off by default: `make chaos`'s database scenario (connections reset under the workers)
    left quota reserved after the run with a pool of 4 (2 and 5 images, twice), and none
    with the task's own thread; and no throughput gain was measured for it
    (docs/performance.md, round 3)."""
    configured = int(getattr(settings, "BUNCH_WORKER_DB_THREADS", 1) or 1)
    return max(1, configured)


class DatabaseThreads:
    """A pool of threads for one event loop's database work; close it when the loop ends."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or pool_size()
        self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="bunch-db")

    def __call__(self, fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
        """`fn` as a coroutine function that runs on one of the pool's threads."""
        return sync_to_async(fn, thread_sensitive=False, executor=self._executor)

    def close(self) -> None:
        """Close every thread's connections (on its own thread, as Django requires), then
        stop the threads. A barrier holds each thread until all have one closing task, so
        that no thread takes two and leaves another's connection open."""
        barrier = threading.Barrier(self.size)

        def close_own() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)
            connections.close_all()

        for future in [self._executor.submit(close_own) for _ in range(self.size)]:
            future.result()
        self._executor.shutdown(wait=True)


# The database threads of the loop this code runs in (set by the runner for its loop; the
# loop's tasks inherit it).
current: ContextVar[DatabaseThreads | None] = ContextVar("bunch_db_threads", default=None)
