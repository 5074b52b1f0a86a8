"""Named writes of the generation domain: submit, edit, cancel, retry, finish."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, F, Func, IntegerField, OuterRef, QuerySet, Subquery
from django.utils import timezone

from billing.pricing import estimate_image_cost
from config.errors import BunchError
from core import metrics
from core.catalog import MODELS, RATIO_PIXELS_1K, Mode
from core.money import from_nanos, to_nanos
from generation import live, queue, signals
from generation.events import job_event_emit
from generation.models import Image, Job, Kind
from generation.presets import PRESETS, TRYON_INPUTS, model_prompt
from generation.providers.types import ProviderError
from tenants.fallback import policy_parse
from tenants.models import ApiKey, Tenant
from tenants.services import (
    quota_period_id,
    quota_release,
    quota_reserve,
    quota_reserve_and_insert,
)
from webhooks.models import WebhookEndpoint

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 8_000
# A deadline at least this far away lets a request wait for the Batch API (results within
# 24 hours at half price).
ECONOMY_DEADLINE = dt.timedelta(hours=24)
MAX_COUNT = 8
MAX_INPUT_IMAGES = 14
# The metadata key a series puts on its frames' jobs: their finish is announced to it.
SERIES_LABEL = "series"

logger = logging.getLogger(__name__)


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
    # Someone waits for the answer (`Prefer: wait`): it goes ahead of the tenant's other API
    # jobs, as dashboard jobs do (generation/scheduler.py).
    interactive: bool = False
    # The job's own fallback policy (generation/fallback.py): None follows the tenant's,
    # {"enabled": False} never falls back.
    fallback: dict[str, Any] | None = None


# Routing --------------------------------------------------------------------------------


def route_mode(
    *,
    tenant: Tenant,
    priority: str | None = None,
    deadline: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> str:
    """`Mode.BATCH` for `priority="economy"`, or no priority and a deadline ≥ 24 h away,
    when the plan allows batch; an explicit `priority="standard"` always runs now."""
    now = now or timezone.now()
    far = deadline is not None and deadline - now >= ECONOMY_DEADLINE
    economy = priority == "economy" or (priority is None and far)
    return Mode.BATCH if economy and tenant.plan.batch_allowed else Mode.STANDARD


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
    if params.kind == Kind.TRYON and len(params.input_image_ids) < TRYON_INPUTS:
        raise _invalid(
            "input_images",
            "A try-on needs two input images: the product first, then the person or model.",
            code="tryon_needs_images",
        )
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


def fallback_override(*, tenant: Tenant, params: JobParams) -> dict[str, Any] | None:
    """The job's own fallback policy, checked against the plan (400 otherwise)."""
    if params.fallback is None:
        return None
    if params.fallback == {"enabled": False}:
        return {"enabled": False}
    return policy_parse(params.fallback, plan=tenant.plan, primary=params.tier).as_json()


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
    waited_for = params.interactive or fields.get("api_key") is None
    return Job(
        tenant=tenant,
        priority=Job.Priority.INTERACTIVE if waited_for else Job.Priority.API,
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
        fallback=fallback_override(tenant=tenant, params=params),
        estimated_cost=from_nanos(nanos),
        reserved_images=params.count,
        reserved_nanos=nanos,
        **fields,
    )


def _count_submitted(tenant: Tenant, job: Job, jobs: int = 1) -> None:
    labels = (job.tier, job.mode, tenant.plan.slug)
    transaction.on_commit(lambda: metrics.jobs_submitted.labels(*labels).inc(jobs))


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
        _count_submitted(tenant, job)
        return job
    with transaction.atomic():
        # The quota row before the job row, as everywhere: the insert locks the tenant's
        # scheduler row (its queued count), and a finishing job takes the two in this order.
        reservation = quota_reserve(
            tenant=tenant, images=job.count, amount=job.estimated_cost, now=now, period_id=period_id
        )
        job.quota_period_id = reservation.period_id  # (the remembered one may be stale)
        job.save(force_insert=True)
        queue.enqueue_job_on_commit(job.pk)
        _count_submitted(tenant, job)
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
    ratio = parent_job.aspect_ratio if parent_job else nearest_ratio(image.width, image.height)
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


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...] = tuple(RATIO_PIXELS_1K)) -> str:
    target = width / height
    return min(ratios, key=lambda r: abs(RATIO_PIXELS_1K[r][0] / RATIO_PIXELS_1K[r][1] - target))


# Cancel --------------------------------------------------------------------------------


def job_cancel(*, job: Job) -> Job:
    """Stop images not yet started; images already made are kept and billed."""
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


def reservation_release_all(*, job: Job) -> None:
    """Give back what the job still holds of its reservation."""
    if job.quota_period_id and (job.reserved_images or job.reserved_nanos):
        quota_release(
            period_id=job.quota_period_id, images=job.reserved_images, nanos=job.reserved_nanos
        )
        Job.objects.filter(pk=job.pk).update(reserved_images=0, reserved_nanos=0)
        job.reserved_images = 0
        job.reserved_nanos = 0


# Finish ---------------------------------------------------------------------------------


def _announce_finished(job: Job) -> None:
    """After commit, tell listeners (the batch settles on its last item). A listener's
    failure is logged, never the job's: the scheduled settle pass is the safety net."""
    job_id, batch_id, status = job.pk, job.batch_id, job.status

    def send() -> None:
        results = signals.job_finished.send_robust(
            sender=Job, job_id=job_id, batch_id=batch_id, status=status
        )
        for receiver, outcome in results:
            if isinstance(outcome, Exception):
                logger.error("job_finished listener %r failed", receiver, exc_info=outcome)

    transaction.on_commit(send)


def job_finish(
    *,
    job_id: uuid.UUID,
    attempts: int = 0,
    error: ProviderError | None = None,
    wake: bool = True,
) -> Job:
    """Settle a job: final status, unused reservation released, webhooks emitted.

    `wake` rings for the tenant's next queued job; the runner passes False because its
    own loop claims the next jobs (and rings when it stops, see `_run`).
    """
    with transaction.atomic():
        # The job row only (NO KEY, not the tenant's row: that would hold up the tenant's
        # submits, whose inserts reference it, until this commits). Its images counted and
        # its tenant's webhook endpoints looked up in the same statement.
        job = (
            Job.objects.select_for_update(no_key=True, of=("self",))
            .select_related("tenant__plan")
            .annotate(
                made=_count(Image.objects.filter(job=OuterRef("pk"))),
                has_endpoints=Exists(
                    WebhookEndpoint.objects.filter(tenant=OuterRef("tenant"), enabled=True)
                ),
            )
            .get(pk=job_id)
        )
        if job.is_finished:
            return job
        _settle(job, made=job.made, attempts=attempts, error=error, wake=wake)
    return job


def job_finish_in_store(*, job: Job, attempts: int) -> None:
    """The job succeeds in the transaction that stored its last image (`ingest.image_store`,
    whose UPDATE of the job row holds the row's lock): the same settlement as `job_finish`,
    without a transaction, a locking read and a news message of its own. `job` is the
    runner's copy from its plan; its counters and flags are read again here, and every
    image is stored (the caller stored the last one)."""
    current = (
        Job.objects.filter(pk=job.pk)
        .annotate(
            has_endpoints=Exists(
                WebhookEndpoint.objects.filter(tenant=OuterRef("tenant"), enabled=True)
            )
        )
        .values(
            "status",
            "attempts",
            "reserved_images",
            "reserved_nanos",
            "quota_period_id",
            "cancel_requested",
            "has_endpoints",
        )
        .get()
    )
    for name, value in current.items():
        setattr(job, name, value)  # (has_endpoints, as `job_finish`'s annotation sets it)
    _settle(job, made=job.count, attempts=attempts, error=None, wake=False, news=False)


def _settle(
    job: Job,
    *,
    made: int,
    attempts: int,
    error: ProviderError | None,
    wake: bool,
    news: bool = True,
) -> None:
    """`job_finish`'s work on the locked, unfinished job (`job.has_endpoints` set)."""
    job.attempts += attempts
    if made >= job.count:
        job.status = Job.Status.SUCCEEDED
    elif job.cancel_requested:
        job.status = Job.Status.CANCELED
    else:
        job.status = Job.Status.FAILED
        job.error_code = error.code if error else "internal_error"
        job.error_message = (
            error.message if error else "The job stopped unexpectedly; it was not retried."
        )
    job.finished_at = timezone.now()
    job.lease_expires_at = None
    # The quota row before the job's status: the status change locks the tenant's
    # scheduler row (its running count, generation/migrations/0011), and a submit locks
    # the quota row, then that one. The same order here, or the two deadlock.
    reservation_release_all(job=job)
    job.save(
        update_fields=[
            "status",
            "attempts",
            "error_code",
            "error_message",
            "finished_at",
            "lease_expires_at",
        ]
    )
    labels = (job.status, job.tier, job.mode, job.tenant.plan.slug)
    transaction.on_commit(lambda: _finished(job, labels))
    if news:  # (the store's own message already names the job and its batch)
        live.jobs_changed(job_ids=[job.pk], batch_ids=[job.batch_id])
    # Most tenants poll: looked up, it spares serialising every finished job.
    if getattr(job, "has_endpoints", True):
        job_event_emit(job=job)
    # A batch's item, or a series' frame (series/ listens; the key is the series'
    # own label on its frames' jobs).
    if job.batch_id is not None or SERIES_LABEL in job.metadata:
        _announce_finished(job)
    if wake:
        tenant_id = job.tenant_id
        transaction.on_commit(lambda: _wake_waiting(tenant_id))


def _finished(job: Job, labels: tuple[str, str, str, str]) -> None:
    metrics.jobs_finished.labels(*labels).inc()
    logger.info(
        "job %s %s",
        job.pk,
        job.status,
        extra={
            "event": "job.finished",
            "job_id": str(job.pk),
            "batch_id": str(job.batch_id) if job.batch_id else None,
            "tenant": job.tenant.slug,
            "status": job.status,
            "error_code": job.error_code or None,
            "duration_ms": round((timezone.now() - job.created_at).total_seconds() * 1000),
        },
    )


def _count(rows: QuerySet[Any]) -> Subquery:
    """`SELECT COUNT(*)` of `rows` as a subquery (for an annotation)."""
    count = Func(F("pk"), function="COUNT", output_field=IntegerField())
    return Subquery(rows.order_by().values(n=count)[:1])


def _wake_waiting(tenant_id: int) -> None:
    """A slot freed up: ring the doorbell for the tenant's next queued job."""
    next_ids = list(
        Job.objects.filter(tenant_id=tenant_id, status=Job.Status.QUEUED)
        .order_by("created_at")
        .values_list("pk", flat=True)[:1]
    )
    queue.enqueue_jobs(next_ids)
