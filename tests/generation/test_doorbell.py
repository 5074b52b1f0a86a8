"""New jobs share doorbells: a web process rings once per window, and the loop a ring
starts keeps looking at the queue long enough to find the jobs whose ring was skipped."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_q.models import OrmQ

from generation import queue, runner, tasks
from generation.models import Job
from generation.scheduler import claim_jobs
from generation.services import JobParams, job_submit
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator


def _rung_tasks() -> list[dict[str, Any]]:
    return [q.task for q in OrmQ.objects.order_by("id")]


@pytest.mark.django_db(transaction=True)
def test_jobs_submitted_within_the_window_share_one_doorbell(
    owner: Actor, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BUNCH_DOORBELL_COALESCE_S = 0.3
    clock = [1000.0]
    monkeypatch.setattr(queue, "_clock", lambda: clock[0])
    before = time.time()
    jobs = [job_submit(tenant=owner.tenant, params=JobParams(prompt=f"p{i}")) for i in range(5)]

    tasks = _rung_tasks()
    assert len(tasks) == 1
    assert tasks[0]["func"] == "generation.tasks.run_job"
    job_id, rung_at = tasks[0]["args"]
    assert job_id == str(jobs[0].pk)
    assert before <= rung_at <= time.time()

    clock[0] += 0.29
    job_submit(tenant=owner.tenant, params=JobParams(prompt="still inside the window"))
    assert len(_rung_tasks()) == 1
    clock[0] += 0.02  # 0.31 s after the ring
    later = job_submit(tenant=owner.tenant, params=JobParams(prompt="after the window"))
    assert [t["args"][0] for t in _rung_tasks()] == [str(jobs[0].pk), str(later.pk)]


@pytest.mark.django_db(transaction=True)
def test_every_job_rings_when_coalescing_is_off(owner: Actor, settings: Any) -> None:
    settings.BUNCH_DOORBELL_COALESCE_S = 0
    for i in range(3):
        job_submit(tenant=owner.tenant, params=JobParams(prompt=f"p{i}"))
    assert len(_rung_tasks()) == 3


@pytest.fixture
def worker_settings(gemini: GeminiEmulator, settings: Any, transactional_db: None) -> Any:
    settings.GEMINI_BASE_URL = gemini.base_url
    settings.GEMINI_API_KEY = gemini.api_key
    settings.BUNCH_DOORBELL_COALESCE_S = 0.3
    settings.BUNCH_DOORBELL_LINGER_S = 1.0
    return settings


def test_a_rung_loop_finds_a_job_committed_during_its_linger(
    worker_settings: Any,
    owner: Actor,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked_at_empty_queue = threading.Event()
    real_claim = runner.claim_jobs

    def claim_and_tell(**kwargs: Any) -> list[Any]:
        claimed = real_claim(**kwargs)
        if not claimed:
            looked_at_empty_queue.set()
        return claimed

    monkeypatch.setattr(runner, "claim_jobs", claim_and_tell)
    handled: list[int] = []
    rung_at = time.time()
    loop = threading.Thread(target=lambda: handled.append(runner.run_jobs(None, rung_at)))
    loop.start()
    assert looked_at_empty_queue.wait(timeout=10)
    with django_capture_on_commit_callbacks(execute=False):  # its ring was coalesced away
        job = job_submit(tenant=owner.tenant, params=JobParams(prompt="a late arrival"))
    loop.join(timeout=30)

    assert not loop.is_alive()
    assert handled == [1]
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    assert time.time() - rung_at >= 1.0


def test_a_loop_started_after_its_linger_looks_once_and_stops(
    worker_settings: Any, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[int] = []
    real_claim = runner.claim_jobs

    def claim_and_count(**kwargs: Any) -> list[Any]:
        claimed = real_claim(**kwargs)
        looks.append(len(claimed))
        return claimed

    monkeypatch.setattr(runner, "claim_jobs", claim_and_count)
    assert runner.run_jobs(None, time.time() - 60) == 0
    assert looks == [0]  # one look at the empty queue, no lingering for more


def test_linger_must_outlast_the_coalescing_window() -> None:
    import os
    import subprocess
    import sys

    from tests.plugins.cluster import ROOT

    env = {**os.environ, "BUNCH_DOORBELL_COALESCE_S": "2", "BUNCH_DOORBELL_LINGER_S": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "BUNCH_DOORBELL_LINGER_S must be longer" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_the_sweep_rings_one_doorbell_per_loop_of_jobs_left_waiting(
    owner: Actor, settings: Any
) -> None:
    settings.BUNCH_JOBS_PER_TASK = 4
    jobs = [job_submit(tenant=owner.tenant, params=JobParams(prompt=f"p{i}")) for i in range(9)]
    OrmQ.objects.all().delete()  # the broker lost their doorbell
    Job.objects.update(created_at=timezone.now() - dt.timedelta(minutes=1))

    swept = tasks.sweep()

    # One loop claims up to BUNCH_JOBS_PER_TASK jobs and keeps looking: 3 rings for 9 jobs.
    assert (swept["doorbells"], swept["rung"]) == (9, 3)
    assert [t["args"][0] for t in _rung_tasks()] == [str(jobs[i].pk) for i in (0, 4, 8)]


@pytest.mark.django_db(transaction=True)
def test_one_worker_process_sweeps_per_period(owner: Actor, settings: Any) -> None:
    settings.BUNCH_SWEEP_EVERY_S = 1
    cache.delete(tasks.SWEEP_KEY)
    job = job_submit(tenant=owner.tenant, params=JobParams(prompt="its worker died"))
    long_ago = timezone.now() - dt.timedelta(seconds=settings.BUNCH_JOB_LEASE_S + 60)
    assert claim_jobs(limit=1, now=long_ago) == [job.pk]
    OrmQ.objects.all().delete()  # its doorbell was taken by the worker that died

    first = tasks.sweep_if_due()
    assert first is not None and first["requeued"] == 1
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    assert [t["args"][0] for t in _rung_tasks()] == [str(job.pk)]
    assert tasks.sweep_if_due() is None  # another process, within the period
    time.sleep(1.1)
    assert tasks.sweep_if_due() == {"requeued": 0, "doorbells": 0, "rung": 0, "quota_settled": 0}
