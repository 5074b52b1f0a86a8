"""Idempotent replays tell the truth: the job as it is now, by the first answer's rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from generation.models import Job
from tests.plugins.actors import Actor, assert_error
from tests.plugins.cluster import Cluster

GENERATIONS = "/api/v1/generations"


@pytest.mark.cluster
def test_a_replay_answers_with_the_job_as_it_is_now_and_honours_prefer_wait(
    cluster_factory: Callable[..., Cluster], owner: Actor
) -> None:
    api = owner.api()
    body = {"prompt": "a lighthouse at dusk", "kind": "banner"}
    first = api.post(GENERATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    assert first.status_code == 202 and first.json()["status"] == "queued"
    job_id = first.json()["id"]

    queued = api.post(GENERATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    assert queued.status_code == 202
    assert queued["Idempotent-Replayed"] == "true"
    assert queued["Location"] == f"{GENERATIONS}/{job_id}"
    assert queued.json()["id"] == job_id and queued.json()["status"] == "queued"

    cluster_factory()  # the job runs only now, while the replay below waits for it
    waited = api.post(
        GENERATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="run-1", HTTP_PREFER="wait=60"
    )
    assert waited.status_code == 200, waited.content
    assert waited["Idempotent-Replayed"] == "true"
    assert waited["Preference-Applied"] == "wait=60"
    assert waited["Location"] == f"{GENERATIONS}/{job_id}"
    assert waited.json()["status"] == "succeeded"
    [image] = waited.json()["images"]

    later = api.post(GENERATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    assert later.status_code == 200
    assert [i["id"] for i in later.json()["images"]] == [image["id"]]
    assert later.json() == api.get(f"{GENERATIONS}/{job_id}").json()
    assert Job.objects.count() == 1


def test_an_explicit_default_is_the_same_request_and_another_value_conflicts(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    api = owner.api()
    with django_capture_on_commit_callbacks(execute=False):
        first = api.post(GENERATIONS, {"prompt": "cat"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
        explicit = api.post(
            GENERATIONS,
            {"prompt": "cat", "count": 1, "kind": "image", "model": "lite", "metadata": {}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k",
        )
        other = api.post(
            GENERATIONS, {"prompt": "cat", "count": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )

    assert explicit.status_code == 202 and explicit["Idempotent-Replayed"] == "true"
    assert explicit.json()["id"] == first.json()["id"]
    assert_error(other, 409, "idempotency_key_reused")
    assert Job.objects.count() == 1


def test_the_same_key_on_another_operation_conflicts(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    api = owner.api()
    with django_capture_on_commit_callbacks(execute=False):
        api.post(GENERATIONS, {"prompt": "cat"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
        batch = api.post(
            "/api/v1/batches",
            {"mode": "realtime", "items": [{"prompt": "cat"}]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k",
        )
    assert_error(batch, 409, "idempotency_key_reused")


def test_a_replay_of_a_canceled_job_says_canceled_with_200(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    api = owner.api()
    with django_capture_on_commit_callbacks(execute=False):
        first = api.post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="c")
        api.post(f"{GENERATIONS}/{first.json()['id']}/cancel")
        again = api.post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="c")

    assert again.status_code == 200
    assert again.json()["status"] == "canceled"
    assert again["Location"] == first["Location"]
