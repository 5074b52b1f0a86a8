"""django-q2 tasks: thin, idempotent, keyed by id. The job rows are the truth."""

from __future__ import annotations

import datetime as dt
import logging
import math

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from generation import ingest, queue, runner


def run_job(job_id: str, rung_at: float | None = None) -> int:
    return runner.run_jobs(job_id, rung_at)


logger = logging.getLogger(__name__)

# Taken (cache.add) by the worker process that sweeps; held for BUNCH_SWEEP_EVERY_S.
SWEEP_KEY = "bunch:generation:sweep"


def sweep() -> dict[str, int]:
    """Recover jobs whose worker died, ring for jobs left waiting, settle lost quota moves.

    Needed with either broker: the ORM broker redelivers a killed task only after its
    retry period, and the Redis broker never does. Run by the `generation.sweep` schedule
    (every minute) and, every `BUNCH_SWEEP_EVERY_S`, by a thread of a worker process
    (`generation.sweeper`).

    One doorbell serves every job queued while its loop looks, so the sweep rings one per
    `BUNCH_JOBS_PER_TASK` jobs found, not one per job: a doorbell per waiting job would
    only queue loops behind the ones running (and the next sweep behind them).
    """
    from generation.models import Job

    now = timezone.now()
    requeued = runner.requeue_expired(now=now)
    stale = now - dt.timedelta(seconds=30)
    waiting = list(
        Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=stale)
        .exclude(pk__in=requeued)
        .order_by("created_at")
        .values_list("pk", flat=True)[:200]
    )
    found = [*requeued, *waiting]
    rung = found[:: max(1, int(settings.BUNCH_JOBS_PER_TASK))]
    queue.enqueue_jobs(rung)
    settled = ingest.quota_settle_pending()
    return {
        "requeued": len(requeued),
        "doorbells": len(waiting),
        "rung": len(rung),
        "quota_settled": settled,
    }


def sweep_if_due() -> dict[str, int] | None:
    """The sweep, unless another process swept in the last `BUNCH_SWEEP_EVERY_S`.

    The shared cache elects one sweep per period (with the in-process cache of a
    Redis-less host, one per worker process). Never raises for the database: a failed
    sweep is tried again by the next process that finds it due.
    """
    every = float(settings.BUNCH_SWEEP_EVERY_S)
    if every <= 0:
        return None
    try:
        if not cache.add(SWEEP_KEY, 1, timeout=math.ceil(every)):
            return None
    except Exception:  # the cache is unreachable: sweep anyway (twice is harmless)
        logger.warning("Sweep election failed; sweeping anyway", exc_info=True)
    try:
        return sweep()
    except DatabaseError:
        logger.warning("The loop's sweep failed; the next one tries again", exc_info=True)
        close_old_connections()
        return None
