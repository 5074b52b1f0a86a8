"""Batch-mode jobs through the provider's Batch API: group, send, poll, ingest.

- **Dispatch** claims queued batch-mode jobs of one (tenant, batch, model) and records a
  `ProviderBatch` (state `creating`) in the same transaction, then creates the provider
  job: inline requests below `BUNCH_BATCH_INLINE_MAX_BYTES`, a JSONL file above it.
- **Poll** asks the provider for each active provider batch's state; a finished one is
  **ingested**: each image stored with its usage event in one transaction, unique per
  (job, index), so polling twice — or two pollers at once — never stores or bills twice.
- Items that failed with a retryable error go back to the queue for the next provider
  batch (up to `BUNCH_PROVIDER_MAX_ATTEMPTS`); permanent ones fail the job with their code.
  An expired provider batch fails its jobs with `batch_expired`; their reservation is
  released and nothing is billed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from batches.models import Batch, ProviderBatch
from batches.settle import batch_settle, batches_settle_open
from core.catalog import Mode
from generation import ingest
from generation.gateway import get_provider
from generation.models import Job
from generation.providers.gemini import BatchStatus, GeminiProvider
from generation.providers.types import (
    ImageRequest,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from generation.services import job_finish

logger = logging.getLogger(__name__)

INGEST_LEASE = dt.timedelta(minutes=10)
# A provider batch stuck in `creating` this long lost its process mid-call.
CREATING_TIMEOUT = dt.timedelta(minutes=10)
STATE = ProviderBatch.State


def _inline_max_bytes() -> int:
    return int(settings.BUNCH_BATCH_INLINE_MAX_BYTES)


def _max_requests() -> int:
    # Every image of a finished provider batch is held in memory while it is ingested.
    return int(settings.BUNCH_BATCH_MAX_REQUESTS)


def _max_age() -> dt.timedelta:
    return dt.timedelta(hours=settings.BUNCH_BATCH_MAX_AGE_HOURS)


def _key(job_id: Any, index: int) -> str:
    return f"{job_id}:{index}"


def _missing(job: Job) -> list[int]:
    stored = ingest.stored_indexes(job)
    return [i for i in range(job.count) if i not in stored]


# Dispatch -------------------------------------------------------------------------------


def _claim(tenant_id: int, batch_id: Any, tier: str, now: dt.datetime) -> ProviderBatch | None:
    """Queued jobs of one group (up to the request limit) → running, with their record."""
    limit = _max_requests()
    with transaction.atomic():
        rows = list(
            Job.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status=Job.Status.QUEUED,
                mode=Mode.BATCH,
                tenant_id=tenant_id,
                batch_id=batch_id,
                tier=tier,
            )
            .order_by("created_at", "batch_item__index")
            .values_list("pk", "count")[:limit]
        )
        ids: list[Any] = []
        total = 0
        for pk, count in rows:
            if ids and total + count > limit:
                break
            ids.append(pk)
            total += count
        if not ids:
            return None
        # lease_expires_at stays empty: the realtime sweeper must never requeue these.
        Job.objects.filter(pk__in=ids, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=now, lease_expires_at=None
        )
        if batch_id is not None:
            Batch.objects.filter(pk=batch_id, status=Batch.Status.QUEUED).update(
                status=Batch.Status.RUNNING
            )
        return ProviderBatch.objects.create(
            tenant_id=tenant_id,
            batch_id=batch_id,
            tier=tier,
            job_ids=[str(pk) for pk in ids],
            created_at=now,
        )


def _requests(record: ProviderBatch) -> list[tuple[str, ImageRequest]]:
    requests = []
    for job in Job.objects.filter(pk__in=record.job_ids).order_by("created_at"):
        request = ingest.job_request(job)
        requests += [(_key(job.pk, index), request) for index in _missing(job)]
    return requests


def _unclaim(record: ProviderBatch) -> None:
    """Put the record's jobs back in the queue for the next dispatch and forget the record."""
    with transaction.atomic():
        Job.objects.filter(pk__in=record.job_ids, status=Job.Status.RUNNING).update(
            status=Job.Status.QUEUED, started_at=None
        )
        record.delete()


def _send(record: ProviderBatch, provider: GeminiProvider) -> None:
    requests = _requests(record)
    try:
        created = provider.create_batch(
            tier=record.tier,
            requests=requests,
            display_name=f"bunch-{record.pk}",
            inline_max_bytes=_inline_max_bytes(),
        )
    except RetryableProviderError as error:
        logger.warning("Provider batch %s not created, will retry: %s", record.pk, error)
        _unclaim(record)
        return
    except ProviderError as error:
        logger.error("Provider batch %s refused: %s", record.pk, error)
        _close(record, STATE.FAILED, error=error.message)
        for job_id in record.job_ids:
            job_finish(job_id=job_id, attempts=1, error=error)
        return
    ProviderBatch.objects.filter(pk=record.pk).update(
        name=created.name,
        state=STATE.PENDING,
        input_mode=created.input_mode,
        request_count=len(requests),
    )


def dispatch(
    *,
    now: dt.datetime | None = None,
    provider: GeminiProvider | None = None,
    batch: Batch | None = None,
) -> int:
    """Send queued batch-mode jobs (of one batch, or all) to the provider; returns how many
    provider batches were made."""
    now = now or timezone.now()
    queued = Job.objects.filter(status=Job.Status.QUEUED, mode=Mode.BATCH)
    if batch is not None:
        queued = queued.filter(batch=batch)
    made = 0
    for tenant_id, batch_id, tier in list(
        queued.values_list("tenant_id", "batch_id", "tier").distinct()
    ):
        while (record := _claim(tenant_id, batch_id, tier, now)) is not None:
            provider = provider or get_provider()
            _send(record, provider)
            made += 1
    return made


def recover_stale(*, now: dt.datetime | None = None) -> int:
    """Records whose process died before the provider answered: requeue their jobs.

    The provider may have made the batch anyway; its images would then come twice from
    Google but are stored and billed once (unique per job and index).
    """
    stale = ProviderBatch.objects.filter(
        state=STATE.CREATING, created_at__lt=(now or timezone.now()) - CREATING_TIMEOUT
    )
    records = list(stale)
    for record in records:
        _unclaim(record)
    return len(records)


# Storing --------------------------------------------------------------------------------


# Poll and ingest ------------------------------------------------------------------------

_TERMINAL_ERRORS: dict[str, ProviderError] = {
    STATE.FAILED: RetryableProviderError(
        "provider_batch_failed", "The provider's batch job failed; the images were not made."
    ),
    STATE.EXPIRED: PermanentProviderError(
        "batch_expired",
        "The provider did not finish the batch within its time limit; the images were not "
        "made and nothing was billed. Submit them again.",
    ),
    STATE.CANCELLED: PermanentProviderError(
        "provider_batch_cancelled", "The provider's batch job was cancelled."
    ),
}


def _close(record: ProviderBatch, state: str, *, error: str = "") -> None:
    now = timezone.now()
    ProviderBatch.objects.filter(pk=record.pk).update(
        state=state, finished_at=now, ingested_at=now, lease_until=None, error_message=error
    )


def _settle_job(job: Job, error: ProviderError | None) -> None:
    """Finish the job, or requeue it when its missing images may succeed next time."""
    retry = (
        error is not None
        and error.retryable
        and not job.cancel_requested
        and job.attempts + 1 < int(settings.BUNCH_PROVIDER_MAX_ATTEMPTS)
        and _missing(job)
    )
    if retry:
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.QUEUED, attempts=F("attempts") + 1
        )
    else:
        job_finish(job_id=job.pk, attempts=1, error=error)


def _ingest(record: ProviderBatch, status: BatchStatus) -> None:
    now = timezone.now()
    lease = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    claimed = ProviderBatch.objects.filter(lease, pk=record.pk, ingested_at__isnull=True).update(
        lease_until=now + INGEST_LEASE, state=status.state
    )
    if not claimed:
        return  # ingested already, or another poller is at it
    jobs = Job.objects.filter(pk__in=record.job_ids).select_related("tenant__plan")
    for job in jobs:
        error = _TERMINAL_ERRORS.get(status.state)
        if status.state == STATE.SUCCEEDED:
            for index in _missing(job):
                result = status.results.get(_key(job.pk, index)) or RetryableProviderError(
                    "no_result", "The provider's batch returned no result for this image."
                )
                if isinstance(result, ProviderError):
                    error = error or result
                elif job.status == Job.Status.RUNNING:
                    ingest.result_store(job=job, index=index, result=result)
        _settle_job(job, error)
    _close(record, status.state, error=status.error)
    if record.batch_id is not None:
        batch_settle(batch_id=record.batch_id)


def poll_one(record: ProviderBatch, provider: GeminiProvider, now: dt.datetime) -> str:
    """Refresh one provider batch; ingest it when it has finished. Returns its state."""
    if record.state in (STATE.PENDING, STATE.RUNNING) and record.created_at < now - _max_age():
        _cancel_at_provider(record, provider)
        status = BatchStatus(name=record.name, state=STATE.EXPIRED)
    else:
        try:
            status = provider.get_batch(record.name)
        except ProviderError as error:
            logger.warning("Polling %s failed: %s", record.name, error)
            return record.state
    ProviderBatch.objects.filter(pk=record.pk, ingested_at__isnull=True).update(
        state=status.state, polled_at=now
    )
    if status.done:
        _ingest(record, status)
    return status.state


def _unfinished() -> Any:
    return ProviderBatch.objects.filter(ingested_at__isnull=True).exclude(state=STATE.CREATING)


def poll(
    *, now: dt.datetime | None = None, provider: GeminiProvider | None = None
) -> dict[str, int]:
    """The scheduled pass: dispatch, recover, poll every unfinished provider batch, settle."""
    now = now or timezone.now()
    provider = provider or get_provider()
    made = dispatch(now=now, provider=provider)
    recovered = recover_stale(now=now)
    states: dict[str, int] = defaultdict(int)
    for record in _unfinished().order_by("created_at"):
        states[poll_one(record, provider, now)] += 1
    settled = batches_settle_open(now=now)
    return {"dispatched": made, "recovered": recovered, "settled": settled, **states}


def poll_for_batch(
    *, batch: Batch, provider: GeminiProvider | None = None, now: dt.datetime | None = None
) -> Batch:
    """One pass for one batch (what `bulk_generate` runs while it waits)."""
    now = now or timezone.now()
    if batch.mode == Mode.BATCH:
        provider = provider or get_provider()
        dispatch(now=now, provider=provider, batch=batch)
        for record in _unfinished().filter(batch=batch):
            poll_one(record, provider, now)
    return batch_settle(batch_id=batch.pk, now=now)


# Cancel ---------------------------------------------------------------------------------


def _cancel_at_provider(record: ProviderBatch, provider: GeminiProvider) -> None:
    try:
        provider.cancel_batch(record.name)
    except ProviderError as error:  # already finished, most likely: its state says
        logger.info("Cancelling %s: %s", record.name, error)


def provider_batches_cancel(*, batch: Batch, provider: GeminiProvider | None = None) -> None:
    """Cancel the batch's provider batches, then ingest whatever they ended with (a batch
    that finished just before the cancel keeps and bills its images)."""
    records = list(
        ProviderBatch.objects.filter(batch=batch, state__in=[STATE.PENDING, STATE.RUNNING])
    )
    if not records:
        return
    provider = provider or get_provider()
    for record in records:
        _cancel_at_provider(record, provider)
        poll_one(record, provider, timezone.now())
