"""The provider budget and the shared cooldown, through real django-q2 worker processes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from generation import budget, budget_redis, queue
from generation.models import BudgetLease, Job, ProviderModel
from generation.services import JobParams, job_submit
from tenants.models import Tenant
from tenants.services import tenant_create
from tests.plugins.actors import Actor, make_plan
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster
MODEL = "gemini-3.1-flash-lite-image"


def _all_finished() -> bool:
    return not Job.objects.exclude(status__in=Job.FINISHED).exists()


def _queue(tenant: Tenant, prompts: list[str], capture: Any) -> list[Job]:
    with capture(execute=False):  # the doorbells are rung below, one per worker process
        return [job_submit(tenant=tenant, params=JobParams(prompt=p)) for p in prompts]


def _two_worker_processes(
    cluster_factory: Callable[..., Cluster], jobs: list[Job], **env: str
) -> None:
    cluster_factory(BUNCH_Q_WORKERS="1", **env)
    cluster_factory(BUNCH_Q_WORKERS="1", **env)
    # More doorbells than one cluster prefetches (BUNCH_Q_QUEUE_LIMIT, 4): both clusters
    # get some, so both processes' loops claim (two doorbells could both go to one).
    for job in jobs[:10]:
        queue.enqueue_job(job.pk)


@pytest.fixture(params=["database", "redis"])
def budget_env(request: Any, settings: Any) -> Iterator[dict[str, str]]:
    """The budget's backend for this test and its worker processes (Redis: a key prefix of
    this test's own)."""
    env = {"BUNCH_BUDGET_BACKEND": request.param}
    if request.param == "redis":
        env["BUNCH_BUDGET_REDIS_URL"] = "redis://127.0.0.1:6379/0"
        env["BUNCH_BUDGET_REDIS_PREFIX"] = f"bunch-test-budget:{uuid.uuid4().hex[:12]}:"
        settings.BUNCH_BUDGET_REDIS_URL = env["BUNCH_BUDGET_REDIS_URL"]
        settings.BUNCH_BUDGET_REDIS_PREFIX = env["BUNCH_BUDGET_REDIS_PREFIX"]
    settings.BUNCH_BUDGET_BACKEND = request.param
    yield env
    if request.param == "redis":
        budget_redis.forget_all()


@pytest.fixture
def big_plan(owner: Actor) -> Tenant:
    plan = owner.tenant.plan
    plan.max_concurrent_jobs = 200
    plan.monthly_image_quota = 10_000
    plan.save()
    return owner.tenant


def test_two_workers_inside_the_budget_never_meet_the_providers_limit(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    big_plan: Tenant,
    budget_env: dict[str, str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    jobs = _queue(big_plan, [f"avatar {i}" for i in range(500)], django_capture_on_commit_callbacks)
    gemini.configure(max_concurrency=6, latency=0.05, jitter=0)
    try:
        _two_worker_processes(cluster_factory, jobs, GEMINI_MAX_IN_FLIGHT="6", **budget_env)
        wait_until(_all_finished, 240, "500 jobs to finish")
        stats = gemini.stats()
    finally:
        gemini.configure(max_concurrency=0, latency=0, jitter=0)

    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    assert stats["max_in_flight"] <= 6
    assert stats["requests"] == 500, stats  # not one 429
    calls = budget.calls_by_holder(MODEL)
    assert sum(calls.values()) == 500
    assert len({holder.rsplit(":", 1)[0] for holder in calls}) == 2  # both processes called


def test_a_429_stops_every_workers_calls_until_the_retry_time_and_spends_no_attempt(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    big_plan: Tenant,
    django_capture_on_commit_callbacks: Any,
) -> None:
    gemini.set_faults(retry_delay_s=1.5)
    gemini.configure(latency=0.1, jitter=0)
    prompts = ["busy [[fail:429x1]]"] + [f"banner {i}" for i in range(40)]
    jobs = _queue(big_plan, prompts, django_capture_on_commit_callbacks)
    try:
        _two_worker_processes(cluster_factory, jobs, GEMINI_MAX_IN_FLIGHT="4")
        wait_until(_all_finished, 120, "the jobs to finish")
    finally:
        gemini.configure(latency=0, jitter=0)
        gemini.clear_faults()

    limited = Job.objects.get(pk=jobs[0].pk)
    assert (limited.status, limited.attempts, limited.deferrals) == ("succeeded", 1, 1)
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    until = ProviderModel.objects.get(model=MODEL).cooldown_until
    assert until is not None
    limited_at = until - dt.timedelta(seconds=1.5)
    # No call of either worker started between the 429 and the end of the cooldown.
    during = BudgetLease.objects.filter(started_at__gt=limited_at, started_at__lt=until)
    assert not during.exists()
    assert BudgetLease.objects.filter(started_at__gte=until).exists()


def test_a_reserving_tenants_work_gets_its_slots_back_from_the_tenant_it_lent_them_to(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    big_plan: Tenant,
    django_capture_on_commit_callbacks: Any,
) -> None:
    reserving = tenant_create(
        name="reserving",
        slug="reserving",
        plan=make_plan(slug="reserving", reserved_concurrency=2, monthly_image_quota=100),
    )
    flood = _queue(
        big_plan, [f"avatar {i}" for i in range(150)], django_capture_on_commit_callbacks
    )
    gemini.configure(latency=0.5, jitter=0)
    try:
        _two_worker_processes(cluster_factory, flood, GEMINI_MAX_IN_FLIGHT="4")
        # Idle, its two slots are lent: the flood has all four.
        wait_until(
            lambda: BudgetLease.objects.filter(tenant_id=big_plan.pk).count() >= 12,
            60,
            "the flood to hold the whole budget",
        )
        assert BudgetLease.objects.filter(reserved=True).count() == 0
        mine = [
            job_submit(tenant=reserving, params=JobParams(prompt=f"logo {i}")) for i in range(2)
        ]
        # Both jobs are committed: a take that stamps its lease later reads them.
        had_work_from = timezone.now()
        wait_until(
            lambda: (
                Job.objects.filter(pk__in=[j.pk for j in mine], status="succeeded").count() == 2
            ),
            60,
            "the reserving tenant's jobs",
        )
    finally:
        gemini.configure(latency=0, jitter=0)

    own = BudgetLease.objects.filter(tenant_id=reserving.pk).order_by("started_at")
    assert [lease.reserved for lease in own] == [True, True]
    # While it had work, the flood never held more than the budget less the reservation:
    # check at every call the flood started meanwhile.
    had_work_until = min(
        Job.objects.filter(pk__in=[j.pk for j in mine]).values_list("finished_at", flat=True)
    )
    flood_leases = list(BudgetLease.objects.filter(tenant_id=big_plan.pk))
    started_meanwhile = [
        lease.started_at
        for lease in flood_leases
        if had_work_from < lease.started_at < had_work_until
    ]
    assert started_meanwhile  # the flood went on using the unreserved slots

    def flood_in_flight(at: dt.datetime) -> int:
        return sum(
            1
            for lease in flood_leases
            if lease.started_at <= at and (lease.released_at is None or lease.released_at > at)
        )

    assert max(flood_in_flight(at) for at in started_meanwhile) <= 4 - 2
    assert not Job.objects.filter(status__in=["failed", "canceled"]).exists()
