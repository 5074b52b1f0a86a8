"""The price difference of a fallback is reserved atomically: many workers moving jobs at
once never take more than the spend cap leaves (PostgreSQL, real row locking)."""

from __future__ import annotations

import threading
from decimal import ROUND_DOWN, Decimal

import pytest
from django.db import connection

from core.money import from_nanos, to_nanos
from generation.budget import cooldown_start
from generation.fallback import fallback_maybe, unit_price
from generation.models import Job
from generation.services import JobParams, job_submit
from tenants.fallback import FallbackPolicy
from tenants.models import QuotaPeriod
from tenants.services import tenant_fallback_set
from tests.plugins.actors import Actor

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

LITE = "gemini-3.1-flash-lite-image"
JOBS = 8


def _running_jobs(owner: Actor) -> list[Job]:
    tenant_fallback_set(
        tenant=owner.tenant,
        policy=FallbackPolicy(models=("flash",), max_price_per_image=Decimal(1), after_s=0),
    )
    for n in range(JOBS):
        job_submit(tenant=owner.tenant, params=JobParams(prompt=f"a chair, take {n}"))
    Job.objects.update(status=Job.Status.RUNNING)
    cooldown_start(model=LITE, seconds=600)
    return list(Job.objects.select_related("tenant__plan"))


def _cap_for(owner: Actor, switches: int, jobs: list[Job]) -> None:
    """A spend cap that holds the Lite reservations plus room for `switches` moves only."""
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    diff = to_nanos(unit_price(job=jobs[0], tier="flash").billed) - jobs[0].reserved_nanos
    room = period.spend_reserved_nanos + switches * diff + diff * 6 // 10
    plan = owner.tenant.plan
    plan.monthly_spend_cap = from_nanos(room).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    plan.save()


def _race(jobs: list[Job]) -> None:
    barrier = threading.Barrier(len(jobs))

    def move(job_id: object) -> None:
        try:
            job = Job.objects.select_related("tenant__plan").get(pk=job_id)
            barrier.wait()
            fallback_maybe(job=job)
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(job.pk,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _check_books(owner: Actor) -> QuotaPeriod:
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    held = sum(Job.objects.values_list("reserved_nanos", flat=True))
    assert period.spend_reserved_nanos == held
    assert period.spend_used_nanos + period.spend_reserved_nanos <= to_nanos(
        owner.tenant.plan.monthly_spend_cap
    )
    return period


def test_quota_that_covers_lite_but_not_flash_moves_no_job_and_never_overspends(
    owner: Actor,
) -> None:
    jobs = _running_jobs(owner)
    _cap_for(owner, 0, jobs)
    owner.tenant.plan.refresh_from_db()
    _race(jobs)

    assert not Job.objects.exclude(tier="lite").exists()
    assert not Job.objects.exclude(requested_tier="").exists()
    _check_books(owner)


def test_eight_workers_moving_at_once_take_exactly_the_room_the_cap_leaves(owner: Actor) -> None:
    jobs = _running_jobs(owner)
    _cap_for(owner, 3, jobs)
    owner.tenant.plan.refresh_from_db()
    _race(jobs)

    moved = Job.objects.filter(tier="flash", requested_tier="lite")
    assert moved.count() == 3
    assert set(moved.values_list("fallback_reason", flat=True)) == {"primary_throttled"}
    _check_books(owner)
