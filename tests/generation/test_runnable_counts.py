"""Each tenant's queued and running counts in its scheduler row (kept by database triggers,
migration generation/0011) equal its jobs, whatever path changed them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from batches.models import REALTIME
from batches.services import ItemSpec, batch_submit
from generation import scheduler
from generation.models import Job, Mode, TenantShare
from generation.services import JobParams, job_cancel, job_finish, job_submit
from tenants.models import Tenant
from tenants.services import tenant_create
from tests.plugins.actors import make_plan

pytestmark = pytest.mark.django_db


def _tenant(slug: str, **plan: Any) -> Tenant:
    values = {"max_concurrent_jobs": 3, "monthly_image_quota": 100_000, **plan}
    return tenant_create(name=slug, slug=slug, plan=make_plan(slug=f"plan-{slug}", **values))


def _true_counts() -> dict[int, tuple[int, int]]:
    queued = Counter(
        Job.objects.filter(status="queued", mode=Mode.STANDARD).values_list("tenant_id", flat=True)
    )
    running = Counter(Job.objects.filter(status="running").values_list("tenant_id", flat=True))
    return {t: (queued[t], running[t]) for t in set(queued) | set(running)}


def _kept_counts() -> dict[int, tuple[int, int]]:
    return {
        t: (q, r)
        for t, q, r in TenantShare.objects.values_list("tenant_id", "queued", "running")
        if q or r
    }


def test_submit_claim_finish_cancel_and_batches_keep_the_counts_true() -> None:
    acme = _tenant("acme")
    globex = _tenant("globex")
    jobs = [job_submit(tenant=acme, params=JobParams(prompt=f"a {i}")) for i in range(5)]
    job_submit(tenant=globex, params=JobParams(prompt="g"))
    batch_submit(tenant=globex, items=[ItemSpec(params=JobParams(prompt="i"))] * 4, mode=REALTIME)
    assert _kept_counts() == _true_counts() == {acme.pk: (5, 0), globex.pk: (5, 0)}

    claimed = scheduler.claim_jobs(limit=10)
    assert len(claimed) == 6  # each at its cap of 3
    assert _kept_counts() == _true_counts() == {acme.pk: (2, 3), globex.pk: (2, 3)}

    running = Job.objects.filter(tenant=acme, status="running").first()
    assert running is not None
    job_finish(job_id=running.pk)  # no image: it fails
    job_cancel(job=jobs[4])  # queued: finished at once
    assert _kept_counts() == _true_counts() == {acme.pk: (1, 2), globex.pk: (2, 3)}

    # A 429 sends a running job back to its queue (a bulk update, as the runner's requeue).
    Job.objects.filter(tenant=globex, status="running").update(status="queued")
    assert _kept_counts() == _true_counts() == {acme.pk: (1, 2), globex.pk: (5, 0)}


def test_only_tenants_with_work_below_their_cap_are_candidates() -> None:
    capped = _tenant("capped", max_concurrent_jobs=1)
    done = _tenant("done")
    free = _tenant("free")
    _tenant("idle")  # never had a job
    for i in range(3):
        job_submit(tenant=capped, params=JobParams(prompt=f"c {i}"))
    job_submit(tenant=done, params=JobParams(prompt="d"))
    Job.objects.filter(tenant=done).update(status="succeeded")
    scheduler.claim_jobs(limit=5)  # capped runs one, its cap
    job_submit(tenant=free, params=JobParams(prompt="f"))

    assert {row[0] for row in _state_rows()} == {free.pk}


def _state_rows() -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(scheduler.state_sql(), [100])
        return list(cursor.fetchall())


def test_deleting_a_tenant_with_work_deletes_its_jobs_and_row() -> None:
    gone = _tenant("gone")
    stays = _tenant("stays")
    job_submit(tenant=gone, params=JobParams(prompt="g"))
    job_submit(tenant=stays, params=JobParams(prompt="s"))
    scheduler.claim_jobs(limit=1)

    gone.delete()

    assert not TenantShare.objects.filter(tenant_id=gone.pk).exists()
    assert _kept_counts() == _true_counts()
