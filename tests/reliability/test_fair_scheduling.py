"""A saturated tenant's backlog and another tenant's jobs, through a real django-q2 cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from generation.models import Job
from generation.services import JobParams, job_submit
from tenants.models import Tenant
from tenants.services import tenant_create
from tests.plugins.actors import make_plan
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster


def _tenant(slug: str, cap: int) -> Tenant:
    plan = make_plan(slug=f"plan-{slug}", max_concurrent_jobs=cap, monthly_image_quota=10_000)
    return tenant_create(name=slug, slug=slug, plan=plan)


def test_a_tenant_behind_a_saturated_backlog_starts_before_the_backlog_drains(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    django_capture_on_commit_callbacks: Any,
) -> None:
    acme = _tenant("acme", cap=4)
    globex = _tenant("globex", cap=4)
    with django_capture_on_commit_callbacks(execute=False):  # the cluster finds them itself
        backlog = [
            job_submit(tenant=acme, params=JobParams(prompt=f"avatar {i}")) for i in range(300)
        ]
    gemini.configure(latency=0.3, jitter=0)
    try:
        cluster_factory()
        job_submit(tenant=acme, params=JobParams(prompt="ring"))  # rings the doorbell
        wait_until(
            lambda: Job.objects.filter(tenant=acme, status="succeeded").count() >= 8,
            60,
            "acme's backlog to be running",
        )
        late = [job_submit(tenant=globex, params=JobParams(prompt=f"logo {i}")) for i in range(3)]
        wait_until(
            lambda: not Job.objects.filter(pk__in=[j.pk for j in late], started_at=None).exists(),
            60,
            "globex's jobs to start",
        )
        started = list(
            Job.objects.filter(tenant=acme, started_at__isnull=False).values_list(
                "started_at", flat=True
            )
        )
        last_globex_start = max(
            Job.objects.filter(pk__in=[j.pk for j in late]).values_list("started_at", flat=True)
        )
    finally:
        gemini.configure(latency=0, jitter=0)

    # Order, not wall-clock: when globex's last job started, most of acme's backlog was
    # still queued (the old claim read the oldest rows first, and globex waited for it all).
    acme_before = sum(1 for at in started if at < last_globex_start)
    assert acme_before < 60
    assert len(backlog) - acme_before > 200
