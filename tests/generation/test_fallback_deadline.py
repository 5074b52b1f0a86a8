"""The fallback's `deadline` rule uses the scheduler's estimated start (issue 20): a job that
a 429 sends back to its queue moves to the fallback model at once when the start it would
get there passes `after_s`, not only once it has waited that long."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from generation import runner, scheduler
from generation.fallback import DEADLINE, reason_for
from generation.models import Job
from generation.services import JobParams, job_submit
from tenants.fallback import FallbackPolicy
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db
POLICY = {"models": ["flash"], "max_price_per_image": "0.10", "after_s": 20}


def _throttled_job_with_queue_ahead(
    owner: Actor, ahead: int, capture: Any
) -> tuple[Job, dt.datetime]:
    """The tenant (cap 1) runs an API job; `ahead` dashboard jobs queue before it."""
    plan = owner.tenant.plan
    plan.max_concurrent_jobs = 1
    plan.save()
    owner.tenant.fallback_policy = POLICY
    owner.tenant.save()
    with capture(execute=False):  # no doorbells: the claim below is the worker's
        job = job_submit(
            tenant=owner.tenant, params=JobParams(prompt="a red bicycle"), api_key=owner.api_key
        )
        assert scheduler.claim_jobs(limit=1) == [job.pk]
        for i in range(ahead):
            job_submit(tenant=owner.tenant, params=JobParams(prompt=f"dash {i}"), user=owner.user)
    return job, timezone.now()


def test_a_429_with_a_long_queue_ahead_moves_the_job_at_once(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    # 10 jobs ahead at a share of 1 and ~4 s each: it would start in about 40 s, past 20.
    job, now = _throttled_job_with_queue_ahead(owner, 10, django_capture_on_commit_callbacks)

    runner._defer(job_id=job.pk, attempts=0)  # what the runner does after a 429

    job.refresh_from_db()
    assert (job.requested_tier, job.tier, job.fallback_reason) == ("lite", "flash", DEADLINE)
    assert (job.status, job.deferrals) == ("queued", 1)
    assert (now - job.created_at).total_seconds() < 20  # it had not waited after_s
    assert job.estimated_cost > Decimal("0.06")  # reserved at Flash's price


def test_a_429_with_a_short_queue_ahead_waits_on_its_model(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    # One job ahead: it starts again in about 4 s, well inside 20.
    job, _ = _throttled_job_with_queue_ahead(owner, 1, django_capture_on_commit_callbacks)

    runner._defer(job_id=job.pk, attempts=0)

    job.refresh_from_db()
    assert (job.requested_tier, job.tier, job.fallback_reason) == ("", "lite", "")
    assert (job.status, job.deferrals) == ("queued", 1)


def test_the_rule_compares_the_estimated_start_with_the_deadline() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    policy = FallbackPolicy(models=("flash",), max_price_per_image=Decimal(1), after_s=20)
    job = Job(created_at=t0, deferrals=0)
    soon, late = t0 + dt.timedelta(seconds=5), t0 + dt.timedelta(seconds=25)

    def reason(start: dt.datetime, throttled: bool) -> str | None:
        return reason_for(
            job=job,
            policy=policy,
            cooling_until=None,
            now=t0,
            estimated_start=start,
            throttled=throttled,
        )

    assert reason(late, throttled=True) == DEADLINE
    assert reason(soon, throttled=True) is None
    # A late estimate alone, the model never throttled: a busy queue is no reason to pay more.
    assert reason(late, throttled=False) is None
