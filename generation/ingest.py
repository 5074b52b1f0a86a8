"""A model result becomes a stored, billed image — once. Shared by the realtime runner and
the Batch API poller.

Image + usage event + the job's reservation counters are written in one transaction, after
locking the job row with the counters' own update (the period's quota counters just after
it: see `image_store`): an image is unique per (job, index) and one-to-one with its usage
event, and a job that has finished (settled, its reservation released) takes no more
images. So a result
delivered twice, or by a worker that lost its lease, is neither stored nor billed twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import Price, UsageEvent
from billing.pricing import cost_of, price_for
from billing.services import usage_quota_settle, usage_record
from core import metrics
from core.catalog import get_model
from core.money import to_nanos
from generation import live
from generation.conversations import services as conversations
from generation.images import image_build, provenance_save
from generation.models import Image, Job
from generation.providers.types import ImageRequest, ImageResult, InputImage
from generation.services import job_finish_in_store

logger = logging.getLogger(__name__)


def job_request(job: Job) -> ImageRequest:
    """What to ask the model for one image of `job`, input images in the order given."""
    inputs = []
    if job.input_image_ids:
        found = Image.objects.filter(tenant_id=job.tenant_id, pk__in=job.input_image_ids)
        images = {str(image.pk): image for image in found}
        for image_id in job.input_image_ids:
            image = images.get(image_id)
            if image is not None:
                with image.file.open("rb") as fh:
                    inputs.append(InputImage(data=fh.read(), mime_type=image.mime_type))
    return ImageRequest(
        tier=job.tier,
        prompt=job.model_prompt,
        aspect_ratio=job.aspect_ratio,
        image_size=job.image_size,
        input_images=tuple(inputs),
        history=conversations.request_history(job),
    )


def stored_indexes(job: Job) -> set[int]:
    indexes = Image.objects.filter(job=job).values_list("index", flat=True)
    return {index for index in indexes if index is not None}


def per_image_nanos(job: Job) -> int:
    """The share of the job's reservation that one image turns into usage."""
    return to_nanos(job.estimated_cost) // job.count


def image_from_result(job: Job, index: int, result: ImageResult) -> Image:
    """The unsaved image, its file written (hashing, file I/O: run it off the loop). No
    thumbnail: that is made on first request (`images.image_thumbnail`)."""
    generated = result.images[0]
    image = image_build(
        tenant_id=job.tenant_id,
        data=generated.data,
        mime_type=generated.mime_type,
        width=generated.width,
        height=generated.height,
        source=Image.Source.GENERATED,
        job=job,
        index=index,
        parent_id=job.parent_image_id,
    )
    image.requested_tier = job.requested_tier or job.tier
    image.served_tier = job.tier
    image.fallback_reason = job.fallback_reason
    return image


def image_store(
    *, job: Job, image: Image, result: ImageResult, finish_attempts: int | None = None
) -> bool:
    """Store `image` with its usage event in one transaction; False (files removed) when it
    was stored before or the job has finished.

    `finish_attempts`: this is the job's last image (every other one is stored), and the
    job succeeds in the same transaction, its attempts so far added
    (`services.job_finish_in_store`): one transaction and a locking read fewer per job.

    The image then moves from the period's reservation to its usage in a step of its own
    (`billing.services.usage_quota_settle`, once per usage event): the period row is the
    tenant's busiest, and inside this transaction it stayed locked until a busy worker got
    round to COMMIT. The sweeper settles what a crash in between leaves
    (`quota_settle_pending`).
    """
    model = get_model(job.tier).model_id
    share = per_image_nanos(job)
    try:
        with transaction.atomic():
            # One statement locks the job row (an UPDATE of non-key columns: FOR NO KEY
            # UPDATE), checks that it has not finished and moves the image's share out of
            # its reservation; a duplicate image below rolls the move back with the rest.
            # On PostgreSQL the same statement reads the price book's line (`_move_share`).
            moved, price = _move_share(job=job, share=share, model=model)
            if not moved:
                raise IntegrityError("job already finished")
            price = price or price_for(model=model, mode=job.mode)
            cost = cost_of(usage=result.usage, price=price, markup=job.tenant.plan.markup_per_image)
            image.save(force_insert=True)
            provenance_save(image)
            conversations.turn_store(job=job, image=image, result=result)
            usage = usage_record(
                tenant_id=job.tenant_id,
                job_id=job.pk,
                image_id=image.pk,
                tier=job.tier,
                mode=job.mode,
                usage=result.usage,
                model=result.model,
                cost=cost,
                quota_settled=False,
            )
            live.jobs_changed(job_ids=[job.pk], batch_ids=[job.batch_id])
            if finish_attempts is not None:
                job_finish_in_store(job=job, attempts=finish_attempts)
    except IntegrityError:
        if image.file.name:
            default_storage.delete(image.file.name)
        return False
    try:
        usage_quota_settle(
            usage_id=usage.pk,
            period_id=job.quota_period_id or 0,
            reserved_nanos=share,
            spent=cost.billed,
        )
    except DatabaseError:
        # The image and its usage event are committed: the store succeeded. The move is
        # the sweep's now (`quota_settle_pending`), as after a kill between the two;
        # failing here would only make the runner call the model again for a stored image.
        logger.warning(
            "Quota move of usage %s failed; the sweep settles it", usage.pk, exc_info=True
        )
    metrics.images_stored.labels(job.tier, job.mode).inc()
    metrics.image_bytes_stored.labels(job.tier, job.mode).inc(image.size_bytes)
    return True


_PRICE_COLUMNS = (
    "id",
    "tier",
    "model",
    "mode",
    "input_per_million",
    "text_output_per_million",
    "image_output_per_million",
)


def _move_share(*, job: Job, share: int, model: str) -> tuple[bool, Price | None]:
    """The image's share out of the unfinished job's reservation: (moved, the price book's
    line for the job's model and mode, when this statement read it).

    On PostgreSQL one statement does both: the price is read in the store's transaction,
    so the image is billed at the price book as it is when stored, and the store spends
    one statement and one round trip less (the price's own SELECT was 4 % of a worker's
    GIL time at provider concurrency 400). Elsewhere the ORM's UPDATE, and None.
    """
    if connection.vendor != "postgresql":
        moved = (
            Job.objects.filter(pk=job.pk)
            .exclude(status__in=Job.FINISHED)
            .update(
                reserved_images=F("reserved_images") - 1,
                reserved_nanos=F("reserved_nanos") - share,
            )
        )
        return bool(moved), None
    quote = connection.ops.quote_name
    jobs, prices = quote(Job._meta.db_table), quote(Price._meta.db_table)
    columns = ", ".join(f"p.{quote(c)}" for c in _PRICE_COLUMNS)
    sql = (
        f"UPDATE {jobs} SET "
        '"reserved_images" = "reserved_images" - 1, "reserved_nanos" = "reserved_nanos" - %s '
        f'FROM (SELECT 1) AS one LEFT JOIN {prices} AS p ON p."model" = %s AND p."mode" = %s '
        f'WHERE {jobs}."id" = %s AND NOT ({jobs}."status" IN (%s, %s, %s)) '
        f"RETURNING {columns}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [share, model, str(job.mode), job.pk, *(s.value for s in Job.FINISHED)])
        row = cursor.fetchone()
    if row is None:
        return False, None
    if row[0] is None:  # no line for this model yet: `price_for` seeds it
        return True, None
    return True, Price(**dict(zip(_PRICE_COLUMNS, row, strict=True)))


def quota_settle_pending(*, older_than: dt.timedelta = dt.timedelta(seconds=30)) -> int:
    """Settle usage events whose image was stored but whose quota move never ran (the
    worker died between the two): the sweeper's job. Returns how many were settled."""
    cutoff = timezone.now() - older_than
    pending = (
        UsageEvent.objects.filter(quota_settled=False, occurred_at__lt=cutoff)
        .select_related("job")
        .order_by("occurred_at")[:500]
    )
    settled = 0
    for usage in pending:
        job = usage.job
        settled += usage_quota_settle(
            usage_id=usage.pk,
            period_id=(job.quota_period_id if job else None) or 0,
            reserved_nanos=per_image_nanos(job) if job else 0,
            spent=usage.billed,
        )
    return settled


def result_store(*, job: Job, index: int, result: ImageResult) -> bool:
    return image_store(job=job, image=image_from_result(job, index, result), result=result)
