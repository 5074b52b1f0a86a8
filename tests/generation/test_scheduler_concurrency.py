"""Several workers claiming at the same moment, on PostgreSQL (real row locks)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection

from generation import scheduler
from generation.models import Job
from generation.services import JobParams, job_submit
from tenants.services import tenant_create
from tests.plugins.actors import make_plan

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

CAP = 3


def _running_by_tenant() -> Counter[int]:
    return Counter(Job.objects.filter(status="running").values_list("tenant_id", flat=True))


def test_no_tenant_passes_its_cap_while_six_workers_claim_at_once(
    django_capture_on_commit_callbacks: Any,
) -> None:
    tenants = [
        tenant_create(
            name=f"t{n}",
            slug=f"t{n}",
            plan=make_plan(slug=f"p{n}", max_concurrent_jobs=CAP, monthly_image_quota=10_000),
        )
        for n in range(4)
    ]
    with django_capture_on_commit_callbacks(execute=False):
        for tenant in tenants:
            for i in range(40):
                job_submit(tenant=tenant, params=JobParams(prompt=f"{tenant.slug} {i}"))
    start = threading.Barrier(6)
    seen: list[Counter[int]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            for n in range(40):
                # New interactive work jumps to the head of a tenant's queue between one
                # worker's look at the heads and another's commit.
                with django_capture_on_commit_callbacks(execute=False):
                    job_submit(tenant=tenants[n % 4], params=JobParams(prompt=f"now {n}"))
                claimed = scheduler.claim_jobs(limit=5)
                seen.append(_running_by_tenant())
                # One job ends somewhere, as calls do, so that a slot frees up and is contended.
                ended = Job.objects.filter(status="running").values("pk")[:1]
                Job.objects.filter(pk__in=ended, status="running").update(status="succeeded")
                del claimed
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert len(seen) == 240
    assert max(n for counts in seen for n in counts.values()) == CAP  # reached, never passed
    assert Job.objects.filter(status="succeeded").count() > 100  # the claims really overlapped
