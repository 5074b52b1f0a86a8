"""Batches: many generation items submitted together, at half price through the provider's
Batch API (`mode="batch"`) or as ordinary jobs (`mode="realtime"`).

Every item is a `Job` (with its `BatchItem`), so images, usage, quota, webhooks and the job
API work for batch items exactly as for single jobs. Batch-mode jobs are never claimed by
the realtime runner; `batches.dispatch` sends them to the provider, polls and
ingests the results.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from batches.dispatch import provider_batches_cancel
from batches.models import BATCH, MAX_ITEMS, REALTIME, Batch, BatchItem, PromptTemplate
from batches.settle import batch_settle
from batches.templates import template_render
from batches.tryon import tryon_rows
from config.errors import BunchError
from core import metrics
from core.catalog import Mode
from core.money import from_nanos
from generation import queue
from generation.models import Image, Job, Kind
from generation.services import (
    InvalidRequest,
    JobParams,
    job_build,
    job_finish,
    job_params_check,
    require_active,
)
from tenants.models import ApiKey, Tenant
from tenants.services import quota_reserve

logger = logging.getLogger(__name__)

MAX_REPORTED_ITEMS = 20


class NotCancelable(BunchError):
    status = 409
    code = "batch_not_cancelable"


@dataclass(frozen=True)
class ItemSpec:
    params: JobParams
    label: str = ""
    locale: str = ""


# Submit ---------------------------------------------------------------------------------


def items_from_template(
    *,
    template: PromptTemplate,
    rows: Sequence[Mapping[str, Any]],
    locales: Sequence[Mapping[str, Any]] = (),
    kind: str | None = None,
    aspect_ratio: str | None = None,
    count: int = 1,
    tier: str = "lite",
    image_size: str = "1K",
    metadata: dict[str, Any] | None = None,
    product_image: uuid.UUID | None = None,
    model_image: uuid.UUID | None = None,
) -> list[ItemSpec]:
    """One item per row × locale, each labelled with its locale (kind and aspect ratio
    default to the template's). A try-on item's input images are its row's product and
    model images (`batches.tryon`)."""
    inputs: list[tuple[uuid.UUID, ...]] = []
    if (kind or template.kind) == Kind.TRYON:
        rows, pairs = tryon_rows(rows, product=product_image, model=model_image)
        inputs = list(pairs)
    return [
        ItemSpec(
            params=JobParams(
                prompt=rendered.prompt,
                kind=kind or template.kind,
                aspect_ratio=aspect_ratio or template.aspect_ratio or None,
                count=count,
                tier=tier,
                image_size=image_size,
                input_image_ids=inputs[rendered.row] if inputs else (),
                metadata={
                    **(metadata or {}),
                    **({"locale": rendered.locale} if rendered.locale else {}),
                },
            ),
            label=rendered.label,
            locale=rendered.locale,
        )
        for rendered in template_render(template=template, rows=rows, locales=locales)
    ]


def _validate(tenant: Tenant, items: Sequence[ItemSpec], mode: str) -> list[str]:
    """All-or-nothing: every item's aspect ratio, or one 400 naming each bad item."""
    if not items:
        raise InvalidRequest("A batch needs at least one item.", code="invalid_request")
    if len(items) > MAX_ITEMS:
        raise InvalidRequest(
            f"A batch holds at most {MAX_ITEMS:,} items; this one has {len(items):,}. "
            "Split it into several batches.",
            code="batch_too_large",
        )
    if mode == BATCH and not tenant.plan.batch_allowed:
        raise BunchError(
            "Your plan does not include batch mode; submit with mode=realtime or upgrade.",
            code="batch_not_in_plan",
            status=403,
        )
    ratios: list[str] = []
    problems: dict[str, list[str]] = {}
    for i, item in enumerate(items):
        try:
            ratios.append(job_params_check(tenant, item.params))
        except BunchError as error:
            for name, messages in (error.fields or {"": [error.message]}).items():
                problems[f"items[{i}]" + (f".{name}" if name else "")] = messages
    _check_input_images(tenant, items, problems)
    if problems:
        shown = dict(list(problems.items())[:MAX_REPORTED_ITEMS])
        raise InvalidRequest(
            f"{len(problems)} item field(s) are invalid; nothing was submitted (see fields).",
            code="invalid_items",
            fields=shown,
        )
    return ratios


def _check_input_images(
    tenant: Tenant, items: Sequence[ItemSpec], problems: dict[str, list[str]]
) -> None:
    """Reference images must be the tenant's own (one query for the whole batch)."""
    wanted = {i for item in items for i in item.params.input_image_ids}
    if not wanted:
        return
    found = set(Image.objects.filter(tenant=tenant, pk__in=wanted).values_list("pk", flat=True))
    for i, item in enumerate(items):
        missing = [str(x) for x in item.params.input_image_ids if x not in found]
        if missing:
            problems[f"items[{i}].input_images"] = [f"No such image(s): {', '.join(missing)}."]


def batch_submit(
    *,
    tenant: Tenant,
    items: Sequence[ItemSpec],
    mode: str = BATCH,
    name: str = "",
    template: PromptTemplate | None = None,
    metadata: dict[str, Any] | None = None,
    api_key: ApiKey | None = None,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> Batch:
    """Validate every item, reserve quota for all of them at once, create the batch and its
    jobs, and hand them to the provider's Batch API (or the realtime runner) after commit."""
    require_active(tenant)
    ratios = _validate(tenant, items, mode)
    job_mode = Mode.BATCH if mode == BATCH else Mode.STANDARD
    now = now or timezone.now()
    actor: dict[str, Any] = {"api_key": api_key, "created_by": user, "created_at": now}
    jobs = [
        job_build(
            tenant=tenant,
            params=item.params,
            ratio=ratio,
            mode=job_mode,
            input_ids=[str(i) for i in item.params.input_image_ids],
            **actor,
        )
        for item, ratio in zip(items, ratios, strict=True)
    ]
    images = sum(job.count for job in jobs)
    nanos = sum(job.reserved_nanos for job in jobs)
    with transaction.atomic():
        reservation = quota_reserve(tenant=tenant, images=images, amount=from_nanos(nanos), now=now)
        batch = Batch.objects.create(
            tenant=tenant,
            mode=job_mode,
            name=name,
            template=template,
            metadata=metadata or {},
            total_items=len(jobs),
            total_images=images,
            estimated_cost=from_nanos(nanos),
            **actor,
        )
        for job in jobs:
            job.batch = batch
            job.priority = Job.Priority.BATCH_ITEM
            job.quota_period_id = reservation.period_id
        Job.objects.bulk_create(jobs, batch_size=500)
        BatchItem.objects.bulk_create(
            [
                BatchItem(batch=batch, index=i, label=item.label, locale=item.locale, job=job)
                for i, (item, job) in enumerate(zip(items, jobs, strict=True))
            ],
            batch_size=500,
        )
        job_ids = [job.pk for job in jobs]
        transaction.on_commit(lambda: _ring(job_mode, job_ids))
        tiers = Counter(job.tier for job in jobs)
        transaction.on_commit(lambda: _count_submitted(tiers, job_mode, tenant.plan.slug))
    return batch


def _count_submitted(tiers: Counter[str], mode: str, plan: str) -> None:
    for tier, n in tiers.items():
        metrics.jobs_submitted.labels(tier, mode, plan).inc(n)


def _ring(job_mode: str, job_ids: list[Any]) -> None:
    """The doorbell after commit; the schedules catch anything a lost doorbell leaves."""
    if job_mode == Mode.BATCH:
        async_task("batches.tasks.dispatch", task_name="batches-dispatch")
    else:
        # Each runner task keeps claiming queued jobs until none are left, so a few
        # doorbells drain the whole batch.
        queue.enqueue_jobs(job_ids[: int(settings.BUNCH_JOBS_PER_TASK)])


# Cancel ----------------------------------------------------------------------


def batch_cancel(*, batch: Batch) -> Batch:
    """Stop what has not been made: queued items end canceled at once, provider batches are
    cancelled, realtime items already running finish their current image."""
    with transaction.atomic():
        updated = Batch.objects.filter(
            pk=batch.pk, status__in=[Batch.Status.QUEUED, Batch.Status.RUNNING]
        ).update(cancel_requested=True)
        if not updated:
            batch.refresh_from_db()
            raise NotCancelable(f"The batch is already {batch.status}.")
        Job.objects.filter(batch=batch, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
            cancel_requested=True
        )
    provider_batches_cancel(batch=batch)
    unfinished = Job.objects.filter(batch=batch, status=Job.Status.QUEUED)
    if batch.mode == Mode.BATCH:  # nothing else will finish them: no worker holds them
        unfinished = Job.objects.filter(batch=batch).exclude(status__in=Job.FINISHED)
    for job_id in unfinished.values_list("pk", flat=True):
        job_finish(job_id=job_id)
    batch_settle(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


# Retry -----------------------------------------------------------------------------------


def batch_retry_failed(*, batch: Batch, user: User | None = None) -> Batch:
    """A new batch of just the failed items, made the same way (mode, model, labels)."""
    failed = (
        BatchItem.objects.filter(batch=batch, job__status=Job.Status.FAILED)
        .select_related("job")
        .order_by("index")
    )
    items = [
        ItemSpec(
            params=JobParams(
                prompt=item.job.prompt,
                kind=item.job.kind,
                aspect_ratio=item.job.aspect_ratio,
                count=item.job.count,
                # The model asked for, not one it fell back to; the same fallback policy.
                tier=item.job.requested_tier or item.job.tier,
                image_size=item.job.image_size,
                input_image_ids=tuple(uuid.UUID(i) for i in item.job.input_image_ids),
                metadata=item.job.metadata,
                fallback=item.job.fallback,
            ),
            label=item.label,
            locale=item.locale,
        )
        for item in failed
    ]
    if not items:
        raise InvalidRequest("This batch has no failed items to retry.", code="nothing_to_retry")
    return batch_submit(
        tenant=batch.tenant,
        items=items,
        mode=BATCH if batch.mode == Mode.BATCH else REALTIME,
        name=f"{batch.name or 'Batch'} (retry of {len(items)} failed)",
        template=batch.template,
        metadata={"retry_of": str(batch.pk)},
        user=user,
    )
