"""The sweeper is not starved by job doorbells (docs/reliability.md, issue 17).

The `generation.sweep` schedule is a task on the broker's queue like the `run_job`
doorbells: while the workers run long loops through a backlog, a sweep enqueued behind
doorbells waited minutes, and so did the jobs of killed workers. Each worker process now
sweeps from a thread of its own (`generation.sweeper`), so a dead worker's job is back in
the queue within its lease plus `BUNCH_SWEEP_EVERY_S`, however many doorbells wait.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import OrmQ

from billing.models import UsageEvent
from generation.models import Image, Job
from generation.queue import enqueue_job
from generation.scheduler import claim_jobs
from generation.services import JobParams, job_submit
from tenants.models import Tenant
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster
DOORBELLS = 8
TASK_BUDGET_S = 30


@pytest.fixture
def tenant(owner: Actor) -> Tenant:
    plan = owner.tenant.plan
    plan.max_concurrent_jobs = 50
    plan.save()
    return owner.tenant


def test_a_dead_workers_job_is_recovered_while_doorbells_fill_the_only_worker(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    tenant: Tenant,
) -> None:
    gemini.configure(latency=1.0, jitter=0)
    orphan = job_submit(tenant=tenant, params=JobParams(prompt="orphan"))  # (its ring is first)
    # Claimed by a worker that died at once: running, its lease long expired.
    died_at = timezone.now() - dt.timedelta(seconds=settings.BUNCH_JOB_LEASE_S + 60)
    assert claim_jobs(limit=1, now=died_at) == [orphan.pk]
    backlog = [job_submit(tenant=tenant, params=JobParams(prompt=f"b{i}")) for i in range(40)]
    for job in backlog[:DOORBELLS]:
        enqueue_job(job.pk)
    assert Job.objects.get(pk=orphan.pk).status == Job.Status.RUNNING

    # One worker, two calls at a time: each doorbell's loop works through the backlog for
    # up to its budget while the doorbells behind it (and any scheduled sweep) wait.
    started = time.monotonic()
    cluster_factory(
        BUNCH_Q_WORKERS="1", BUNCH_Q_QUEUE_LIMIT="1", BUNCH_JOBS_PER_TASK="2",
        BUNCH_CALLS_PER_TASK="2", BUNCH_TASK_BUDGET_S=str(TASK_BUDGET_S),
        BUNCH_JOB_LEASE_S="5", BUNCH_SWEEP_EVERY_S="2",
    )  # fmt: skip
    try:
        wait_until(
            lambda: Job.objects.get(pk=orphan.pk).status == Job.Status.SUCCEEDED,
            25,
            "the dead worker's job to be swept back and finished",
        )
        recovered_s = time.monotonic() - started
        # Still behind the first loop: the doorbells, which a schedule's sweep would follow.
        waiting_doorbells = OrmQ.objects.count()
        unfinished_backlog = Job.objects.filter(pk__in=[j.pk for j in backlog]).exclude(
            status__in=Job.FINISHED
        )
        assert waiting_doorbells >= DOORBELLS - 2, waiting_doorbells
        assert unfinished_backlog.exists()
        assert recovered_s < TASK_BUDGET_S  # not after the first loop's budget

        wait_until(lambda: not unfinished_backlog.exists(), 60, "the backlog")
    finally:
        gemini.configure(latency=0)

    jobs = [orphan, *backlog]
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Image.objects.count() == UsageEvent.objects.count() == len(jobs)
    assert Image.objects.values("job_id").distinct().count() == len(jobs)
