"""Delayed doorbells: a delivery's retry is rung at its `next_attempt_at`, not at the next
sweep (which runs every minute and would send a 5-second retry up to a minute late).

Each worker process keeps one daemon thread with a heap of (due time, delivery id) and
enqueues the `deliver` task at each due time. Only retries due within `HORIZON` are held:
the process that recorded a failed attempt arms its retry when it is that close (the
first, after 5 s), and every `webhooks.sweep` arms those due before the sweep after it
(`HORIZON` is longer than the time between two sweeps). A process that dies takes its
doorbells with it; the sweep then sends those deliveries once due, as before. A doorbell
rung twice is harmless: an attempt claims its delivery with a conditional update.

Doorbells are armed in django-q2 worker processes only (`enable`, on `post_spawn`): a web
process or a test's inline run never records retries to ring for.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

HORIZON = dt.timedelta(seconds=150)


def _ring(delivery_id: str) -> None:
    async_task("webhooks.tasks.deliver", delivery_id, task_name=f"webhook-{delivery_id}")


class Doorbells:
    def __init__(self, ring: Callable[[str], None] = _ring) -> None:
        self._ring = ring
        self._heap: list[tuple[float, str]] = []
        self._armed: dict[str, float] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ring_at(self, delivery_id: str, due: dt.datetime) -> bool:
        """Ring for the delivery at `due` if that is within the horizon; True if armed."""
        at = due.timestamp()
        if at - time.time() > HORIZON.total_seconds():
            return False
        with self._cond:
            if self._armed.get(delivery_id) == at:
                return True
            self._armed[delivery_id] = at
            heapq.heappush(self._heap, (at, delivery_id))
            self._start()
            self._cond.notify()
        return True

    def _start(self) -> None:
        # A forked process inherits the heap but not the thread.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="bunch-doorbells", daemon=True)
            self._thread.start()

    def _next_due(self) -> str:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, delivery_id = self._heap[0]
                left = at - time.time()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._heap)
                if self._armed.get(delivery_id) == at:
                    del self._armed[delivery_id]
                    return delivery_id

    def _run(self) -> None:
        while True:
            delivery_id = self._next_due()
            try:
                close_old_connections()
                self._ring(delivery_id)
            except Exception:  # the sweep rings for it when it is due
                logger.warning("Could not ring for webhook delivery %s", delivery_id)


_doorbells: Doorbells | None = None


def enable() -> None:
    """This process is a worker: retries it learns of are rung on time."""
    global _doorbells
    if _doorbells is None:
        _doorbells = Doorbells()


def ring_at(delivery_id: str, due: dt.datetime) -> bool:
    return _doorbells.ring_at(delivery_id, due) if _doorbells is not None else False
