"""The fair claim: which tenant's job starts next (generation/scheduler.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batches.models import REALTIME
from batches.services import ItemSpec, batch_submit
from generation import scheduler
from generation.models import Job, TenantShare
from generation.services import JobParams, job_submit
from tenants.models import Plan, Tenant
from tenants.services import tenant_create
from tests.plugins.actors import Actor, make_plan

pytestmark = pytest.mark.django_db


def _tenant(slug: str, **plan: Any) -> Tenant:
    values = {"max_concurrent_jobs": 1000, "monthly_image_quota": 100_000, **plan}
    return tenant_create(name=slug, slug=slug, plan=make_plan(slug=f"plan-{slug}", **values))


def _queue(tenant: Tenant, n: int, *, count: int = 1, actor: Actor | None = None) -> list[Job]:
    key = {"api_key": actor.api_key} if actor else {}
    return [
        job_submit(tenant=tenant, params=JobParams(prompt=f"{tenant.slug} {i}", count=count), **key)
        for i in range(n)
    ]


def _claim_one_at_a_time(n: int) -> list[int]:
    """Tenant ids in the order their jobs were claimed, one claim per job."""
    order = []
    for _ in range(n):
        (job_id,) = scheduler.claim_jobs(limit=1)
        order.append(Job.objects.get(pk=job_id).tenant_id)
    return order


@pytest.fixture(autouse=True)
def _no_doorbells(django_capture_on_commit_callbacks: Any) -> Any:
    # The claim is driven by hand here; nothing runs the jobs.
    with django_capture_on_commit_callbacks(execute=False):
        yield


def test_a_saturated_tenants_backlog_does_not_hide_a_later_tenants_job() -> None:
    acme = _tenant("acme", max_concurrent_jobs=4)
    globex = _tenant("globex")
    _queue(acme, 200)
    (late,) = _queue(globex, 1)

    first = scheduler.claim_jobs(limit=10)
    second = scheduler.claim_jobs(limit=10)

    assert late.pk in first
    assert len(first) == 5  # acme's 4 (its cap) and globex's one
    assert second == []
    assert Job.objects.filter(tenant=acme, status="running").count() == 4


def test_a_lone_tenant_gets_its_cap_at_once() -> None:
    acme = _tenant("acme", max_concurrent_jobs=6)
    _queue(acme, 20)

    assert len(scheduler.claim_jobs(limit=50)) == 6


def test_the_claim_costs_the_same_whatever_a_tenants_backlog() -> None:
    acme = _tenant("acme", max_concurrent_jobs=4)
    globex = _tenant("globex")
    _queue(acme, 10)
    _queue(globex, 1)
    scheduler.claim_jobs(limit=8)  # the first claim of a tenant also creates its share row
    Job.objects.filter(status="running").update(status="queued")
    with CaptureQueriesContext(connection) as small:
        scheduler.claim_jobs(limit=8)
    Job.objects.filter(status="running").update(status="queued")
    _queue(acme, 400)
    with CaptureQueriesContext(connection) as large:
        scheduler.claim_jobs(limit=8)

    assert len(large) == len(small)


def test_weights_decide_the_share_of_starts() -> None:
    heavy = _tenant("heavy", weight=2)
    light = _tenant("light", weight=1)
    _queue(heavy, 80)
    _queue(light, 80)

    order = _claim_one_at_a_time(90)

    share = Counter(order)
    assert share[heavy.pk] == 60
    assert share[light.pk] == 30
    # Interleaved, not one tenant's run after the other's: every 3 starts hold one of light's.
    assert all(order[i : i + 3].count(light.pk) == 1 for i in range(0, 90, 3))


def test_shares_are_counted_in_images_not_jobs() -> None:
    big = _tenant("big")
    small = _tenant("small")
    _queue(big, 20, count=4)
    _queue(small, 80, count=1)

    order = _claim_one_at_a_time(50)

    images = {big.pk: 4 * order.count(big.pk), small.pk: order.count(small.pk)}
    assert abs(images[big.pk] - images[small.pk]) <= 4


def test_splitting_work_over_api_keys_gains_nothing(tenant_a: Tenant) -> None:
    from tests.plugins.actors import make_actor

    first_key = make_actor(tenant_a, "one@acme.test", "member")
    second_key = make_actor(tenant_a, "two@acme.test", "member")
    Plan.objects.filter(pk=tenant_a.plan_id).update(max_concurrent_jobs=1000)
    other = _tenant("other")
    _queue(tenant_a, 20, actor=first_key)
    _queue(tenant_a, 20, actor=second_key)
    _queue(other, 40)

    order = _claim_one_at_a_time(40)

    assert Counter(order) == {tenant_a.pk: 20, other.pk: 20}


def test_a_tenant_back_from_idle_has_no_banked_credit() -> None:
    busy = _tenant("busy")
    idle = _tenant("idle")
    _queue(busy, 60)
    _claim_one_at_a_time(30)  # idle had nothing queued all this time
    _queue(idle, 30)

    order = _claim_one_at_a_time(20)

    assert Counter(order) == {busy.pk: 10, idle.pk: 10}


def test_interactive_work_goes_before_api_work_and_api_work_before_batch_items(
    owner: Actor,
) -> None:
    tenant = owner.tenant
    tenant.plan.max_concurrent_jobs = 100
    tenant.plan.save()
    batch = batch_submit(
        tenant=tenant, items=[ItemSpec(params=JobParams(prompt="item"))] * 3, mode=REALTIME
    )
    api_job = job_submit(tenant=tenant, params=JobParams(prompt="api"), api_key=owner.api_key)
    waited = job_submit(
        tenant=tenant, params=JobParams(prompt="wait", interactive=True), api_key=owner.api_key
    )
    dashboard = job_submit(tenant=tenant, params=JobParams(prompt="dash"), user=owner.user)

    order = [scheduler.claim_jobs(limit=1)[0] for _ in range(6)]

    assert set(order[:2]) == {waited.pk, dashboard.pk}
    assert order[2] == api_job.pk
    assert set(order[3:]) == set(batch.jobs.values_list("pk", flat=True))


def test_a_tenant_below_its_reservation_is_picked_first() -> None:
    ahead = _tenant("ahead")
    reserved = _tenant("reserved", reserved_concurrency=3)
    _queue(ahead, 10)
    _queue(reserved, 10)
    # Far behind in the fair order: without its reservation it would wait for `ahead`.
    TenantShare.objects.filter(tenant=reserved).update(start=0.0, finish=1000.0)

    order = _claim_one_at_a_time(5)

    assert order == [reserved.pk] * 3 + [ahead.pk] * 2


def test_plans_default_to_weight_one_and_no_reservation(plan: Plan) -> None:
    assert (plan.weight, plan.reserved_concurrency) == (1, 0)
