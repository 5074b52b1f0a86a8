"""Fallback: a job moves to another model when its own is throttled — only by the
tenant's opt-in (or the job's own policy), under its price cap, with the price difference
reserved first, and disclosed on every image.

Decided when a worker has claimed the job and is about to call (`runner._plan`):

- `primary_throttled`: the requested model is in the shared 429 cooldown
  (`budget.cooldown_until`) and waiting it out would pass the job's deadline
  (created + `after_s`);
- `deadline`: the job's estimated start passes its deadline and its model has throttled
  it (a cooldown now, or a 429 sent it back to the queue). At a claim the estimated start
  is now (so: it has waited `after_s`); when a 429 sends it back to the queue
  (`fallback_on_deferral`) it is the scheduler's estimate of its next start (its place in
  its tenant's queue at the tenant's share, and the cooldown's end): a job that would start
  too late moves at once, not only once it has waited `after_s`.

The first model of the policy that the plan still allows, that makes the job's ratio and
size, is not cooling down itself and whose estimated billed price per image (provider
price + the plan's markup) is at most `max_price_per_image`, is tried: the difference to
what the job has reserved is reserved against the quota and spend cap in the transaction
that moves the job. If that reservation is refused the job stays on its model and waits
(never an overspend). The cooldown stays on the requested model, so every other job still
honours its retry time.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.pricing import Cost, estimate_image_cost
from core.catalog import MODELS
from core.money import from_nanos, to_nanos
from generation import scheduler
from generation.budget import cooldown_until
from generation.models import Job
from tenants.fallback import FallbackPolicy, policy_from_json
from tenants.services import QuotaExceeded, SpendCapExceeded, quota_release, quota_reserve

logger = logging.getLogger(__name__)

SWITCHED_FIELDS = ["tier", "requested_tier", "fallback_reason", "estimated_cost", "reserved_nanos"]
PRIMARY_THROTTLED = "primary_throttled"
DEADLINE = "deadline"


def job_policy(job: Job) -> FallbackPolicy | None:
    """The job's own policy if it has one (`{"enabled": false}`: none), else the tenant's."""
    if job.fallback is not None:
        return policy_from_json(job.fallback)
    return policy_from_json(job.tenant.fallback_policy)


def unit_price(*, job: Job, tier: str) -> Cost:
    """The estimated price of one of the job's images on `tier` (what the cap compares)."""
    return estimate_image_cost(
        tier=tier,
        mode=job.mode,
        image_size=job.image_size,
        prompt=job.model_prompt,
        input_images=len(job.input_image_ids),
        markup=job.tenant.plan.markup_per_image,
    )


def fits(*, job: Job, tier: str) -> bool:
    spec = MODELS.get(tier)
    return (
        spec is not None
        and job.tenant.plan.allows_tier(tier)
        and job.aspect_ratio in spec.aspect_ratios
        and job.image_size in spec.image_sizes
    )


def candidates(*, job: Job, policy: FallbackPolicy) -> list[tuple[str, Cost]]:
    """The policy's models this job could move to, in order, with their unit prices."""
    found = []
    for tier in policy.models:
        if tier == job.tier or not fits(job=job, tier=tier):
            continue
        price = unit_price(job=job, tier=tier)
        if price.billed <= policy.max_price_per_image:
            found.append((tier, price))
    return found


def reason_for(
    *,
    job: Job,
    policy: FallbackPolicy,
    cooling_until: dt.datetime | None,
    now: dt.datetime,
    estimated_start: dt.datetime | None = None,
    throttled: bool = False,
) -> str | None:
    """Why the job should leave its model now, or None to stay. `estimated_start`: when it
    would start on its model (default now); `throttled`: a 429 just sent it back."""
    deadline = job.created_at + dt.timedelta(seconds=policy.after_s)
    cooling = cooling_until is not None and cooling_until > now
    if cooling and cooling_until is not None and cooling_until >= deadline:
        return PRIMARY_THROTTLED
    start = max(now, estimated_start or now)
    if start >= deadline and (cooling or throttled or job.deferrals > 0):
        return DEADLINE
    return None


def _cooling(tier: str, now: dt.datetime) -> bool:
    until = cooldown_until(MODELS[tier].model_id)
    return until is not None and until > now


def fallback_maybe(*, job: Job, now: dt.datetime | None = None, on_deferral: bool = False) -> Job:
    """`job` moved (in place, and returned) to a fallback model if its policy says so and
    the money is there; else `job` unchanged. Only for a running standard-mode job that
    has not moved already. `on_deferral`: a 429 is sending it back to its queue, so its
    start is the scheduler's estimate of its next one."""
    if job.requested_tier or job.mode != "standard":
        return job
    policy = job_policy(job)
    if policy is None:
        return job
    now = now or timezone.now()
    cooling_until = cooldown_until(MODELS[job.tier].model_id)
    estimated = None
    if on_deferral:
        pace = scheduler.tenant_pace(job.tenant)
        position = scheduler.queue_position(job)
        estimated = scheduler.start_estimate(
            job, pace=pace, position=position, now=now, running_self=True
        )
        if cooling_until is not None:
            estimated = max(estimated, cooling_until)
    reason = reason_for(
        job=job,
        policy=policy,
        cooling_until=cooling_until,
        now=now,
        estimated_start=estimated,
        throttled=on_deferral,
    )
    if reason is None:
        return job
    for tier, price in candidates(job=job, policy=policy):
        if _cooling(tier, now):
            continue
        if job_fallback_switch(job=job, tier=tier, per_image=price.billed, reason=reason, now=now):
            job.refresh_from_db(fields=SWITCHED_FIELDS)
            return job
    return job


@dataclass(frozen=True)
class _Reserved:
    images: int
    nanos: int


@transaction.atomic
def job_fallback_switch(
    *, job: Job, tier: str, per_image: Decimal, reason: str, now: dt.datetime | None = None
) -> bool:
    """Move the job's images not yet made to `tier`, reserving the price difference first.

    False (nothing changed) if the job is no longer running on its requested model, or if
    the quota or spend cap cannot take the difference: then it waits on its own model.
    """
    locked = (
        Job.objects.select_for_update(no_key=True)
        .filter(pk=job.pk, status=Job.Status.RUNNING, requested_tier="", tier=job.tier)
        .values("reserved_images", "reserved_nanos", "quota_period_id")
        .first()
    )
    if locked is None:
        return False
    held = _Reserved(images=locked["reserved_images"], nanos=locked["reserved_nanos"])
    new_nanos = to_nanos(per_image) * held.images
    extra = new_nanos - held.nanos
    if extra > 0:
        try:
            with transaction.atomic():
                reservation = quota_reserve(
                    tenant=job.tenant,
                    images=0,
                    amount=from_nanos(extra),
                    now=now,
                    period_id=locked["quota_period_id"],
                )
                if reservation.period_id != locked["quota_period_id"]:
                    # A job of last month: its reservation lives in that month's row.
                    raise SpendCapExceeded("the job's period has ended")
        except (QuotaExceeded, SpendCapExceeded):
            logger.info("Job %s stays on %s: no room for the fallback's price", job.pk, job.tier)
            return False
    elif extra < 0 and locked["quota_period_id"]:
        quota_release(period_id=locked["quota_period_id"], images=0, nanos=-extra)
    Job.objects.filter(pk=job.pk).update(
        requested_tier=job.tier,
        tier=tier,
        fallback_reason=reason,
        # Each image still to come settles the new price (`ingest.per_image_nanos`).
        estimated_cost=from_nanos(to_nanos(per_image) * job.count),
        reserved_nanos=new_nanos,
    )
    return True
