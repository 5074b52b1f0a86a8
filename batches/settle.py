"""A batch's status follows its items: running once one started, finished once all are."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from batches.events import batch_event_emit
from batches.models import Batch
from batches.progress import progress_of
from generation import live
from generation.models import Job


def _final_status(batch: Batch, counts: dict[str, int]) -> str:
    if batch.cancel_requested:
        return Batch.Status.CANCELED
    if counts.get(Job.Status.SUCCEEDED, 0) == 0 and counts.get(Job.Status.FAILED, 0):
        return Batch.Status.FAILED
    return Batch.Status.SUCCEEDED


def batch_settle(*, batch_id: Any, now: dt.datetime | None = None) -> Batch:
    """Mark the batch running once work started, and finished once every item is; the
    finishing emits `batch.completed` (or `batch.failed` when no item succeeded) once."""
    with transaction.atomic():
        batch = (
            Batch.objects.select_for_update(no_key=True, of=("self",))
            .select_related("tenant")
            .get(pk=batch_id)
        )
        if batch.is_finished:
            return batch
        rows = Job.objects.filter(batch=batch).values("status").annotate(n=Count("pk"))
        counts = {row["status"]: row["n"] for row in rows}
        unfinished = sum(n for status, n in counts.items() if status not in Job.FINISHED)
        if unfinished:
            if counts.get(Job.Status.QUEUED, 0) < sum(counts.values()):
                Batch.objects.filter(pk=batch.pk, status=Batch.Status.QUEUED).update(
                    status=Batch.Status.RUNNING
                )
            return batch
        batch.status = _final_status(batch, counts)
        batch.finished_at = now or timezone.now()
        # Every item has finished, so these are final (`batches.progress`).
        batch.final_progress = progress_of([batch.pk])[batch.pk].as_json()
        batch.save(update_fields=["status", "finished_at", "final_progress"])
        batch_event_emit(batch=batch)
        live.jobs_changed(job_ids=[], batch_ids=[batch.pk])
    return batch


def batches_settle_open(*, now: dt.datetime | None = None) -> int:
    """Settle every unfinished batch (realtime items finish without telling the batch)."""
    ids = list(
        Batch.objects.filter(status__in=[Batch.Status.QUEUED, Batch.Status.RUNNING]).values_list(
            "pk", flat=True
        )
    )
    return sum(batch_settle(batch_id=pk, now=now).is_finished for pk in ids)


def on_job_finished(sender: Any, *, batch_id: Any = None, **kwargs: Any) -> None:
    """`generation.signals.job_finished`: a batch settles as its last item finishes (and is
    `running` from its first finished item on), not at the next scheduled pass."""
    if batch_id is None:
        return
    open_items = Job.objects.filter(batch_id=batch_id).exclude(status__in=Job.FINISHED)
    if open_items.exists():
        Batch.objects.filter(pk=batch_id, status=Batch.Status.QUEUED).update(
            status=Batch.Status.RUNNING
        )
    else:
        batch_settle(batch_id=batch_id)
