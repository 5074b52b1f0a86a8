from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from tenants.models import QuotaPeriod, Tenant
from tenants.services import (
    QuotaExceeded,
    SpendCapExceeded,
    quota_commit,
    quota_release,
    quota_reserve,
)
from tests.plugins.actors import make_plan


def _period(tenant: Tenant) -> QuotaPeriod:
    return QuotaPeriod.objects.get(tenant=tenant)


def _race(threads: int, reserve: Callable[[int], Any]) -> tuple[list[Any], list[int]]:
    """`threads` threads, each on its own connection, call `reserve(n)` at the same moment;
    what they got, and which were refused for quota."""
    granted: list[Any] = []
    refused: list[int] = []
    barrier = threading.Barrier(threads)

    def contend(n: int) -> None:
        try:
            barrier.wait()
            granted.append(reserve(n))
        except QuotaExceeded:
            refused.append(n)
        finally:
            connection.close()

    workers = [threading.Thread(target=contend, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return granted, refused


@pytest.mark.django_db
def test_reserve_commit_release_move_the_counters(tenant_a: Tenant) -> None:
    reservation = quota_reserve(tenant=tenant_a, images=4, amount=Decimal("0.20"))
    quota_commit(
        period_id=reservation.period_id,
        images=3,
        reserved_nanos=reservation.nanos * 3 // 4,
        spent=Decimal("0.12"),
    )
    quota_release(
        period_id=reservation.period_id,
        images=1,
        nanos=reservation.nanos - reservation.nanos * 3 // 4,
    )

    period = _period(tenant_a)
    assert (period.images_used, period.images_reserved) == (3, 0)
    assert (period.spend_used_nanos, period.spend_reserved_nanos) == (120_000_000, 0)


@pytest.mark.django_db
def test_reserving_past_the_image_quota_is_refused(tenant_a: Tenant) -> None:
    quota_reserve(tenant=tenant_a, images=999, amount=Decimal("1"))
    with pytest.raises(QuotaExceeded) as info:
        quota_reserve(tenant=tenant_a, images=2, amount=Decimal("0.01"))
    assert info.value.status == 402
    assert "only 1 remain" in info.value.message
    assert _period(tenant_a).images_reserved == 999


@pytest.mark.django_db
def test_reserving_past_the_spend_cap_is_refused(tenant_a: Tenant) -> None:
    quota_reserve(tenant=tenant_a, images=1, amount=Decimal("99.99"))
    with pytest.raises(SpendCapExceeded):
        quota_reserve(tenant=tenant_a, images=1, amount=Decimal("0.02"))
    quota_reserve(tenant=tenant_a, images=1, amount=Decimal("0.01"))  # exactly the cap
    assert _period(tenant_a).spend_reserved_nanos == 100 * 10**9


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_grant_more_than_remains() -> None:
    """Many threads, each with its own connection, race for 7 remaining images."""
    plan = make_plan(slug="race", monthly_image_quota=10)
    tenant = Tenant.objects.create(name="Race", slug="race", plan=plan)
    quota_reserve(tenant=tenant, images=3, amount=Decimal("0.1"))
    granted, refused = _race(
        24, lambda n: quota_reserve(tenant=tenant, images=1, amount=Decimal("0.05"))
    )

    assert len(granted) == 7
    assert len(refused) == 17
    period = _period(tenant)
    assert period.images_reserved == 10
    assert period.spend_reserved_nanos == 100_000_000 + 7 * 50_000_000


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_create_exactly_as_many_jobs_as_remain() -> None:
    """The submit path (one statement on PostgreSQL, a transaction on SQLite): 24 threads
    race for 7 remaining images; 7 jobs exist afterwards, each with its reservation."""
    from generation.models import Job
    from generation.services import JobParams, job_submit

    plan = make_plan(slug="race-submit", monthly_image_quota=10)
    tenant = Tenant.objects.create(name="Race", slug="race-submit", plan=plan)
    quota_reserve(tenant=tenant, images=3, amount=Decimal("0.1"))
    results, refused = _race(
        24, lambda n: job_submit(tenant=tenant, params=JobParams(prompt=f"p{n}"))
    )
    granted = [str(job.pk) for job in results]

    assert (len(granted), len(refused)) == (7, 17)
    jobs = Job.objects.filter(tenant=tenant)
    assert sorted(str(pk) for pk in jobs.values_list("pk", flat=True)) == sorted(granted)
    period = _period(tenant)
    assert period.images_reserved == 10
    assert period.spend_reserved_nanos == 100_000_000 + sum(j.reserved_nanos for j in jobs)
    assert all(j.quota_period_id == period.pk and j.reserved_images == 1 for j in jobs)
