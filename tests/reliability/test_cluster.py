"""Jobs through a real django-q2 cluster in another process, the way production runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db.models import Count

from billing.models import UsageEvent
from core.catalog import RATIO_PIXELS_1K
from generation import tasks
from generation.models import Image, Job
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster
GENERATIONS = "/api/v1/generations"
KINDS = ["avatar", "mockup", "banner", "image"]


def _all_finished() -> bool:
    return not Job.objects.exclude(status__in=Job.FINISHED).exists()


def test_thirty_mixed_jobs_all_succeed_with_right_sizes_and_one_usage_event_per_image(
    cluster_factory: Callable[..., Cluster], owner: Actor
) -> None:
    cluster_factory()
    api = owner.api()
    expected: dict[str, tuple[int, str]] = {}
    ratios = list(RATIO_PIXELS_1K)
    for n in range(30):
        body = {
            "prompt": f"asset number {n}",
            "kind": KINDS[n % 4],
            "count": n % 3 + 1,
            "aspect_ratio": ratios[n % len(ratios)],
        }
        response = api.post(GENERATIONS, body, format="json")
        assert response.status_code == 202
        expected[response.json()["id"]] = (body["count"], body["aspect_ratio"])

    wait_until(_all_finished, 90, "30 jobs to finish")

    jobs = {str(j.pk): j for j in Job.objects.all()}
    assert {j.status for j in jobs.values()} == {"succeeded"}
    for job_id, (count, ratio) in expected.items():
        images = Image.objects.filter(job_id=job_id)
        assert images.count() == count
        assert {(i.width, i.height) for i in images} == {RATIO_PIXELS_1K[ratio]}
    total = sum(count for count, _ in expected.values())
    assert Image.objects.count() == UsageEvent.objects.count() == total


def test_sigkill_mid_job_then_a_new_worker_finishes_without_duplicates(
    cluster_factory: Callable[..., Cluster], owner: Actor, gemini: GeminiEmulator
) -> None:
    gemini.configure(latency=0.4, jitter=0)
    try:
        # One call at a time and a short lease, so the kill lands between images.
        first = cluster_factory(BUNCH_CALLS_PER_TASK="1", BUNCH_JOB_LEASE_S="3")
        job_id = (
            owner.api().post(GENERATIONS, {"prompt": "x", "count": 6}, format="json").json()["id"]
        )
        wait_until(
            lambda: Image.objects.filter(job_id=job_id).count() >= 2, 30, "two images stored"
        )
        first.kill()
        made_before = Image.objects.filter(job_id=job_id).count()
        assert made_before < 6
        assert Job.objects.get(pk=job_id).status == "running"

        cluster_factory(BUNCH_JOB_LEASE_S="3")
        # The sweeper (scheduled every minute in production) recovers it once the lease
        # of the dead worker has run out.
        wait_until(lambda: tasks.sweep()["requeued"] == 1, 15, "the expired lease")
        wait_until(_all_finished, 60, "the job to finish on the new worker")
    finally:
        gemini.configure(latency=0, jitter=0)

    job = Job.objects.get(pk=job_id)
    assert job.status == "succeeded"
    indexes = list(Image.objects.filter(job=job).values_list("index", flat=True))
    assert sorted(indexes) == list(range(6))
    assert UsageEvent.objects.filter(job=job).count() == 6
    assert not (UsageEvent.objects.values("image").annotate(n=Count("id")).filter(n__gt=1).exists())
