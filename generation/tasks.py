"""django-q2 tasks: thin, idempotent, keyed by id. The job rows are the truth."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from generation import ingest, queue, runner


def run_job(job_id: str, rung_at: float | None = None) -> int:
    return runner.run_jobs(job_id, rung_at)


def sweep() -> dict[str, int]:
    """Scheduled: recover jobs whose worker died and ring for jobs left waiting.

    Needed with either broker: the ORM broker redelivers a killed task only after its
    retry period, and the Redis broker never does.
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
    queue.enqueue_jobs([*requeued, *waiting])
    settled = ingest.quota_settle_pending()
    return {
        "requeued": len(requeued),
        "doorbells": len(waiting),
        "quota_settled": settled,
    }
