"""SIGTERM to a real worker (`manage.py qcluster`) mid-run: it stops claiming, finishes or
hands back its calls within `BUNCH_WORKER_STOP_S`, and gives back its budget slots."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from billing.models import UsageEvent
from generation.budget import budget_in_use
from generation.models import Image, Job, WorkerHeartbeat
from generation.queue import enqueue_job
from generation.services import JobParams, job_submit
from tenants.models import Tenant
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster
MODEL = "gemini-3.1-flash-lite-image"


@pytest.fixture
def tenant(owner: Actor) -> Tenant:
    plan = owner.tenant.plan
    plan.max_concurrent_jobs = 50
    plan.save()
    return owner.tenant


def _submit(tenant: Tenant, counts: list[int], capture: Any) -> list[Job]:
    with capture(execute=False):  # one doorbell, rung below: the loop claims the rest
        jobs = [
            job_submit(tenant=tenant, params=JobParams(prompt=f"stop {i}", count=n))
            for i, n in enumerate(counts)
        ]
    enqueue_job(jobs[0].pk)
    return jobs


def _calls_in_flight(n: int) -> Callable[[], bool]:
    return lambda: budget_in_use().get(MODEL, 0) == n


def _nothing_lost_or_stuck(jobs: list[Job]) -> None:
    """Every job is finished once, by whichever worker: each image stored and billed once."""
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    for job in jobs:
        assert Image.objects.filter(job=job).count() == job.count
    assert UsageEvent.objects.count() == Image.objects.count() == sum(j.count for j in jobs)


def test_sigterm_lets_calls_in_flight_finish_and_claims_nothing_more(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    tenant: Tenant,
    django_capture_on_commit_callbacks: Any,
) -> None:
    gemini.configure(latency=2.0, jitter=0)
    jobs = _submit(tenant, [1] * 6, django_capture_on_commit_callbacks)
    worker = cluster_factory(
        BUNCH_Q_WORKERS="1", GEMINI_MAX_IN_FLIGHT="2", BUNCH_WORKER_STOP_S="20"
    )
    wait_until(_calls_in_flight(2), 60, "two calls in flight")
    wait_until(lambda: WorkerHeartbeat.objects.exists(), 10, "the worker's heartbeat")

    stopped_at = timezone.now()
    took = worker.terminate(timeout_s=25)

    assert took < 2.0 + 15  # the calls' latency, plus the cluster's own stop
    assert not Job.objects.filter(status=Job.Status.RUNNING).exists()
    finished = list(Job.objects.filter(status=Job.Status.SUCCEEDED))
    assert len(finished) >= 2  # the calls in flight were let finish, not cut off
    assert all(job.started_at < stopped_at for job in finished)  # none claimed after
    handed_back = Job.objects.filter(status=Job.Status.QUEUED)
    assert handed_back.count() == 6 - len(finished)
    assert {(j.attempts, j.deferrals, j.started_at) for j in handed_back} == {(0, 0, None)}
    assert budget_in_use() == {}  # released, not left to expire (BUNCH_BUDGET_LEASE_S)
    assert not WorkerHeartbeat.objects.exists()  # a stopped worker is not a lost one

    gemini.configure(latency=0)
    cluster_factory(BUNCH_Q_WORKERS="1")
    wait_until(lambda: not Job.objects.exclude(status__in=Job.FINISHED).exists(), 60, "the rest")
    _nothing_lost_or_stuck(jobs)


def test_calls_still_running_at_the_deadline_are_handed_back_without_spending_an_attempt(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    tenant: Tenant,
    django_capture_on_commit_callbacks: Any,
) -> None:
    gemini.configure(latency=60.0, jitter=0)  # no call can finish before the deadline
    jobs = _submit(tenant, [1, 2, 1], django_capture_on_commit_callbacks)
    worker = cluster_factory(BUNCH_Q_WORKERS="1", GEMINI_MAX_IN_FLIGHT="3", BUNCH_WORKER_STOP_S="1")
    wait_until(_calls_in_flight(3), 60, "three calls in flight")

    took = worker.terminate(timeout_s=20)

    assert took < 1.0 + 15  # the deadline, plus the cluster's own stop; not the 60 s call
    assert set(Job.objects.values_list("status", flat=True)) == {"queued"}
    assert set(Job.objects.values_list("attempts", "deferrals")) == {(0, 0)}
    assert not Image.objects.exists()
    assert budget_in_use() == {}

    # The next worker takes them from the doorbells the stopping one rang (no sweep: its
    # first look is 30 s after start, and this one finishes within that).
    gemini.configure(latency=0)
    cluster_factory(BUNCH_Q_WORKERS="1")
    wait_until(lambda: not Job.objects.exclude(status__in=Job.FINISHED).exists(), 25, "the jobs")
    _nothing_lost_or_stuck(jobs)
    assert set(Job.objects.values_list("attempts", flat=True)) == {1, 2}  # one call per image
