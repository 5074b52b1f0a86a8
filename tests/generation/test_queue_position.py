"""A queued job says where it stands: `queue: {position, estimated_start_at}`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils.dateparse import parse_datetime

from generation import scheduler
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db
GENERATIONS = "/api/v1/generations"


def _submit(owner: Actor, n: int, **headers: str) -> list[dict[str, Any]]:
    api = owner.api()
    return [
        api.post(GENERATIONS, {"prompt": f"p{i}"}, format="json", **headers).json()
        for i in range(n)
    ]


def test_a_queued_job_tells_how_many_of_the_tenants_jobs_start_first_and_when_it_may(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    owner.tenant.plan.max_concurrent_jobs = 2
    owner.tenant.plan.save()
    with django_capture_on_commit_callbacks(execute=False):
        jobs = _submit(owner, 5)
    assert jobs[0]["queue"] is None  # the 202 does not count the queue; a GET does
    running = scheduler.claim_jobs(limit=10)
    assert len(running) == 2

    api = owner.api()
    before = dt.datetime.now(dt.UTC)
    last = api.get(f"{GENERATIONS}/{jobs[4]['id']}").json()
    first = api.get(f"{GENERATIONS}/{jobs[0]['id']}").json()

    assert first["status"] == "running"
    assert first["queue"] is None
    assert last["queue"]["position"] == 2
    # Two ahead at a share of two running jobs: one job time (4 s assumed) for them to end,
    # then its own turn comes with the next one.
    eta = parse_datetime(last["queue"]["estimated_start_at"])
    assert eta is not None
    assert 7 <= (eta - before).total_seconds() <= 9


def test_a_job_someone_waits_for_goes_ahead_of_the_tenants_other_api_jobs(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    owner.tenant.plan.max_concurrent_jobs = 1
    owner.tenant.plan.save()
    with django_capture_on_commit_callbacks(execute=False):
        _submit(owner, 3)
        scheduler.claim_jobs(limit=1)
        waited = owner.api().post(
            GENERATIONS, {"prompt": "now please"}, format="json", HTTP_PREFER="wait=1"
        )

    assert waited.status_code == 202  # nothing ran it within the second
    assert waited.json()["queue"]["position"] == 0


def test_the_list_shows_each_queued_jobs_position(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        _submit(owner, 3)
    listed = owner.api().get(GENERATIONS).json()["results"]
    assert sorted(job["queue"]["position"] for job in listed) == [0, 1, 2]
