"""Named writes of the generation domain: submit, cancel, upload, edit."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from billing.money import from_nanos, to_nanos
from billing.pricing import estimate_image_cost
from config.errors import BunchError, Conflict, NotFound
from generation import queue
from generation.models import IdempotencyRecord, Image, Job, Kind, Mode, thumbnail_upload_to
from generation.presets import PRESETS, model_prompt
from generation.providers.registry import MODELS, RATIO_PIXELS_1K
from tenants.models import ApiKey, Tenant
from tenants.services import (
    quota_period_id,
    quota_release,
    quota_reserve,
    quota_reserve_and_insert,
)

MAX_PROMPT_CHARS = 8_000
MAX_COUNT = 8
MAX_INPUT_IMAGES = 14
MAX_UPLOAD_BYTES = 7 * 1024 * 1024
MAX_UPLOAD_SIDE = 4096
UPLOAD_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
THUMBNAIL_SIDE = 256
IDEMPOTENCY_TTL = dt.timedelta(hours=24)


class InvalidRequest(BunchError):
    status = 400
    code = "invalid_request"


class BillingInactive(BunchError):
    status = 402
    code = "billing_inactive"


class NotCancelable(BunchError):
    status = 409
    code = "job_not_cancelable"


@dataclass(frozen=True)
class JobParams:
    prompt: str
    kind: str = Kind.IMAGE
    aspect_ratio: str | None = None
    count: int = 1
    tier: str = "lite"
    image_size: str = "1K"
    mode: str = Mode.STANDARD
    input_image_ids: tuple[uuid.UUID, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    parent_image_id: uuid.UUID | None = None


# Submit -------------------------------------------------------------------------------


def _invalid(field_name: str, message: str, code: str = "invalid_request") -> InvalidRequest:
    return InvalidRequest(message, code=code, fields={field_name: [message]})


def job_params_check(tenant: Tenant, params: JobParams) -> str:
    """Validate against the model and the plan; returns the aspect ratio to use."""
    if params.kind not in PRESETS:
        raise _invalid("kind", f"Unknown kind {params.kind!r}; use one of {', '.join(PRESETS)}.")
    if not params.prompt.strip():
        raise _invalid("prompt", "The prompt is empty.")
    if len(params.prompt) > MAX_PROMPT_CHARS:
        raise _invalid("prompt", f"The prompt is longer than {MAX_PROMPT_CHARS} characters.")
    if not 1 <= params.count <= MAX_COUNT:
        raise _invalid("count", f"count must be between 1 and {MAX_COUNT}.")
    spec = MODELS.get(params.tier)
    if spec is None:
        raise _invalid("model", f"Unknown model {params.tier!r}; use one of {', '.join(MODELS)}.")
    if not tenant.plan.allows_tier(params.tier):
        raise BunchError(
            f"Your plan does not include the {params.tier!r} model; it allows "
            f"{', '.join(tenant.plan.allowed_tiers)}.",
            code="model_not_in_plan",
            status=403,
        )
    if params.mode == Mode.BATCH and not tenant.plan.batch_allowed:
        raise BunchError(
            "Your plan does not include batch mode.", code="batch_not_in_plan", status=403
        )
    ratio = params.aspect_ratio or PRESETS[params.kind].default_ratio
    if ratio not in spec.aspect_ratios:
        raise _invalid(
            "aspect_ratio",
            f"{spec.display_name} does not make {ratio!r} images; use one of "
            f"{', '.join(spec.aspect_ratios)}.",
            code="unsupported_aspect_ratio",
        )
    if params.image_size not in spec.image_sizes:
        raise _invalid(
            "image_size",
            f"{spec.display_name} makes only {', '.join(spec.image_sizes)} images.",
            code="unsupported_image_size",
        )
    if len(params.input_image_ids) > MAX_INPUT_IMAGES:
        raise _invalid("input_images", f"At most {MAX_INPUT_IMAGES} input images are allowed.")
    if len(json.dumps(params.metadata)) > 4096:
        raise _invalid("metadata", "metadata must be at most 4 KB of JSON.")
    return ratio


def _check_inputs(tenant: Tenant, ids: tuple[uuid.UUID, ...]) -> list[str]:
    if not ids:  # most jobs: spares building a query that would not run
        return []
    found = set(Image.objects.filter(tenant=tenant, pk__in=ids).values_list("pk", flat=True))
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise _invalid(
            "input_images",
            f"No such image(s) in your account: {', '.join(missing)}.",
            code="input_image_not_found",
        )
    return [str(i) for i in ids]


def require_active(tenant: Tenant) -> None:
    """New work is refused (402) unless the tenant's account is in good standing."""
    if tenant.status != Tenant.Status.ACTIVE:
        raise BillingInactive(
            f"New work is paused while the account is {tenant.status.replace('_', ' ')}; "
            "update the payment method to resume."
        )


def job_build(
    *,
    tenant: Tenant,
    params: JobParams,
    ratio: str,
    mode: str,
    input_ids: list[str] | None = None,
    **fields: Any,
) -> Job:
    """An unsaved job with its estimated cost and the reservation that cost needs."""
    prompt = model_prompt(params.kind, params.prompt)
    per_image = estimate_image_cost(
        tier=params.tier,
        mode=mode,
        image_size=params.image_size,
        prompt=prompt,
        input_images=len(input_ids or []),
        markup=tenant.plan.markup_per_image,
    )
    nanos = to_nanos(per_image.billed) * params.count
    return Job(
        tenant=tenant,
        kind=params.kind,
        prompt=params.prompt,
        model_prompt=prompt,
        aspect_ratio=ratio,
        image_size=params.image_size,
        tier=params.tier,
        mode=mode,
        count=params.count,
        input_image_ids=input_ids or [],
        parent_image_id=params.parent_image_id,
        metadata=params.metadata,
        estimated_cost=from_nanos(nanos),
        reserved_images=params.count,
        reserved_nanos=nanos,
        **fields,
    )


def job_submit(
    *,
    tenant: Tenant,
    params: JobParams,
    api_key: ApiKey | None = None,
    user: User | None = None,
    now: dt.datetime | None = None,
) -> Job:
    """Validate, reserve quota and spend, create the job and enqueue it after commit."""
    require_active(tenant)
    ratio = job_params_check(tenant, params)
    period_id = quota_period_id(tenant=tenant, now=now)
    job = job_build(
        tenant=tenant,
        params=params,
        ratio=ratio,
        mode=params.mode,
        input_ids=_check_inputs(tenant, params.input_image_ids),
        api_key=api_key,
        created_by=user,
        quota_period_id=period_id,
        created_at=now or timezone.now(),
    )
    # One statement on PostgreSQL (see `quota_reserve_and_insert`); when it is refused or
    # cannot be used, the transaction below reserves or says why.
    if quota_reserve_and_insert(
        tenant=tenant,
        images=job.count,
        amount=job.estimated_cost,
        period_id=period_id,
        row=job,
        now=now,
    ):
        job._state.adding, job._state.db = False, connection.alias
        queue.enqueue_job_on_commit(job.pk)
        return job
    with transaction.atomic():
        job.save(force_insert=True)
        # Last, so that the tenant's period row is locked only from here to the commit:
        # all of the tenant's submits update it.
        reservation = quota_reserve(
            tenant=tenant, images=job.count, amount=job.estimated_cost, now=now, period_id=period_id
        )
        if reservation.period_id != period_id:  # the remembered period id was stale
            job.quota_period_id = reservation.period_id
            job.save(update_fields=["quota_period_id"])
        queue.enqueue_job_on_commit(job.pk)
    return job


def image_edit_submit(
    *,
    tenant: Tenant,
    image: Image,
    instruction: str,
    extra_input_ids: tuple[uuid.UUID, ...] = (),
    count: int = 1,
    tier: str = "lite",
    api_key: ApiKey | None = None,
    user: User | None = None,
) -> Job:
    """A new job whose first input is `image`: the next version in its chain."""
    parent_job = image.job
    ratio = parent_job.aspect_ratio if parent_job else _nearest_ratio(image.width, image.height)
    params = JobParams(
        prompt=instruction,
        kind=parent_job.kind if parent_job else Kind.IMAGE,
        aspect_ratio=ratio,
        count=count,
        tier=tier,
        input_image_ids=(image.pk, *extra_input_ids),
        parent_image_id=image.pk,
    )
    return job_submit(tenant=tenant, params=params, api_key=api_key, user=user)


def _nearest_ratio(width: int, height: int) -> str:
    target = width / height
    return min(
        RATIO_PIXELS_1K, key=lambda r: abs(RATIO_PIXELS_1K[r][0] / RATIO_PIXELS_1K[r][1] - target)
    )


# Cancel --------------------------------------------------------------------------------


def job_cancel(*, job: Job) -> Job:
    """Stop images not yet started; images already made are kept and billed."""
    from generation.runner import job_finish  # the runner owns finishing

    if job.is_finished:
        raise NotCancelable(f"The job is already {job.status}.")
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]
        ).update(cancel_requested=True)
    if not updated:
        job.refresh_from_db()
        raise NotCancelable(f"The job is already {job.status}.")
    # A queued job has no worker to notice; finish it here. A running one is finished by
    # its worker, which checks the flag before each image.
    if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).exists():
        job_finish(job_id=job.pk)
    job.refresh_from_db()
    return job


def job_retry(*, job: Job) -> Job:
    """A failed job again, as a new job with the same parameters (operators' action)."""
    params = JobParams(
        prompt=job.prompt,
        kind=job.kind,
        aspect_ratio=job.aspect_ratio,
        count=job.count,
        tier=job.tier,
        image_size=job.image_size,
        mode=job.mode,
        input_image_ids=tuple(uuid.UUID(i) for i in job.input_image_ids),
        metadata={**job.metadata, "retry_of": str(job.pk)},
        parent_image_id=job.parent_image_id,
    )
    return job_submit(tenant=job.tenant, params=params)


# Uploads and stored images -------------------------------------------------------------


@dataclass(frozen=True)
class CheckedImage:
    mime_type: str
    width: int
    height: int


def image_size_check(size: int) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise InvalidRequest(
            f"The image is {size / 1_048_576:.1f} MB; the limit is 7 MB.", code="image_too_large"
        )


def image_check(data: bytes) -> CheckedImage:
    """A real PNG, JPEG or WebP within the size limits, or a 400 that says what is wrong."""
    image_size_check(len(data))
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidRequest(
            "The file is not a readable image; upload a PNG, JPEG or WebP.",
            code="invalid_image",
        ) from None
    if fmt not in UPLOAD_FORMATS:
        raise InvalidRequest(
            f"{fmt or 'This'} images are not accepted; upload a PNG, JPEG or WebP.",
            code="unsupported_image_type",
        )
    if max(width, height) > MAX_UPLOAD_SIDE:
        raise InvalidRequest(
            f"The image is {width}×{height}; at most {MAX_UPLOAD_SIDE} pixels a side.",
            code="image_dimensions_too_large",
        )
    return CheckedImage(mime_type=UPLOAD_FORMATS[fmt], width=width, height=height)


def thumbnail_bytes(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as source:
        source.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # cheap downscale for JPEG
        thumb = source.convert("RGB")
    if max(thumb.size) > THUMBNAIL_SIDE * 4:
        thumb = thumb.reduce(max(1, max(thumb.size) // (THUMBNAIL_SIDE * 2)))
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=72, method=0)
    return out.getvalue()


def image_build(
    *,
    tenant_id: int,
    data: bytes,
    mime_type: str,
    width: int,
    height: int,
    source: str,
    job: Job | None = None,
    index: int | None = None,
    parent_id: uuid.UUID | None = None,
) -> Image:
    """An unsaved Image with its file written through Django's storage.

    The bytes are stored exactly as given (SynthID and C2PA credentials intact). The
    thumbnail is not made here but on first request (`image_thumbnail`).
    """
    image = Image(
        tenant_id=tenant_id,
        job=job,
        index=index,
        source=source,
        parent_id=parent_id,
        mime_type=mime_type,
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    image.file.save("original", ContentFile(data), save=False)
    return image


def image_thumbnail(image: Image) -> FieldFile:
    """The image's WebP thumbnail, open for reading: made from the original on first
    request and stored.

    Lazy rather than made when the image is stored: decoding the PNG is more than half of
    a worker's CPU per generated image (docs/performance.md), and most API users never
    view thumbnails. Two first requests may both make one; the conditional update keeps
    the first stored and the other removes its own file and serves that one.
    """
    seen = image.thumbnail.name or ""
    if seen and default_storage.exists(seen):
        return image.thumbnail.open("rb")
    with image.file.open("rb") as original:
        data = thumbnail_bytes(original.read())
    name = default_storage.save(thumbnail_upload_to(image, "thumb"), ContentFile(data))
    # Compared with the name read, not "", so that a stored name whose file is gone is
    # replaced too.
    if not Image.objects.filter(pk=image.pk, thumbnail=seen).update(thumbnail=name):
        winner = Image.objects.filter(pk=image.pk).values_list("thumbnail", flat=True).first()
        if winner != name:
            default_storage.delete(name)
        if not winner:
            raise NotFound("No such image.")
        name = winner
    image.thumbnail.name = name
    return image.thumbnail.open("rb")


def image_upload(*, tenant: Tenant, data: bytes) -> Image:
    checked = image_check(data)
    image = image_build(
        tenant_id=tenant.pk,
        data=data,
        mime_type=checked.mime_type,
        width=checked.width,
        height=checked.height,
        source=Image.Source.UPLOAD,
    )
    image.save()
    return image


# Idempotency ----------------------------------------------------------------------------


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_begin(
    *, tenant: Tenant, key: str, fingerprint: str, now: dt.datetime | None = None
) -> IdempotencyRecord:
    """Claim `key` for this request, or return its finished first response.

    A returned record with `response_status` 0 is ours to complete with
    `idempotency_finish` (or `idempotency_abandon` on failure, so the client can retry).
    """
    since = (now or timezone.now()) - IDEMPOTENCY_TTL
    IdempotencyRecord.objects.filter(tenant=tenant, key=key, created_at__lt=since).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                tenant=tenant,
                key=key,
                request_hash=fingerprint,
                response_status=0,
                response_body={},
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.get(tenant=tenant, key=key)
    if record.request_hash != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used with a different request body.",
            code="idempotency_key_reused",
        )
    if record.response_status == 0:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            code="idempotency_request_in_progress",
        )
    record.replayed = True  # type: ignore[attr-defined]
    return record


def idempotency_finish(*, record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body
    )


def idempotency_abandon(*, record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, response_status=0).delete()


def reservation_release_all(*, job: Job) -> None:
    """Give back what the job still holds of its reservation."""
    if job.quota_period_id and (job.reserved_images or job.reserved_nanos):
        quota_release(
            period_id=job.quota_period_id, images=job.reserved_images, nanos=job.reserved_nanos
        )
        Job.objects.filter(pk=job.pk).update(reserved_images=0, reserved_nanos=0)
        job.reserved_images = 0
        job.reserved_nanos = 0
