"""Enqueueing: the queue is only a doorbell; job rows are the truth.

A doorbell starts a runner loop (`generation.runner`) that claims queued jobs until the
queue is empty, so one doorbell serves every job submitted while its loop looks. A web
process therefore rings at most once per `BUNCH_DOORBELL_COALESCE_S` for new jobs: a job
whose ring is skipped was committed less than that after a ring, and the loop of that
ring keeps looking at the queue until `BUNCH_DOORBELL_LINGER_S` after it was rung (the
linger is longer than the coalescing window, see `runner._run`). The sweeper still rings
for anything left behind (a doorbell the Redis broker lost, say).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django_q.conf import Conf
from django_q.tasks import async_task

_ring_lock = threading.Lock()
_last_ring = float("-inf")
_clock = time.monotonic  # the coalescing window's clock (tests move it)


def enqueue_job(job_id: uuid.UUID | str, *, rung_at: float | None = None) -> None:
    """Ring for `job_id`. `rung_at` (epoch s) asks the loop to linger."""
    async_task("generation.tasks.run_job", str(job_id), rung_at, task_name=f"job-{job_id}")


def ring_for_new_job(job_id: uuid.UUID | str) -> bool:
    """Ring for a job just committed, unless this process rang moments ago; True if rung."""
    global _last_ring
    window = float(settings.BUNCH_DOORBELL_COALESCE_S)
    if Conf.SYNC or window <= 0:  # tasks run inline (tests): every job needs its own run
        enqueue_job(job_id)
        return True
    with _ring_lock:
        now = _clock()
        if now - _last_ring < window:
            return False
        _last_ring = now
    enqueue_job(job_id, rung_at=time.time())
    return True


def forget_last_ring() -> None:
    """The next new job rings whatever this process did before (tests start clean)."""
    global _last_ring
    with _ring_lock:
        _last_ring = float("-inf")


def enqueue_job_on_commit(job_id: uuid.UUID | str) -> None:
    transaction.on_commit(lambda: ring_for_new_job(job_id))


def enqueue_jobs(job_ids: Iterable[uuid.UUID | str]) -> None:
    for job_id in job_ids:
        enqueue_job(job_id)
