"""A batch follows its items as they happen: `running` while they run, finished (and its
webhook sent) within a second of the last one, with no scheduled pass in between."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Max

from batches.models import Batch
from generation.models import Image, Job
from tests.batches.conftest import BATCHES, get_batch, submit
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator
from tests.plugins.receiver import WebhookReceiver


@pytest.mark.cluster
def test_a_realtime_batch_runs_then_finishes_with_its_last_item_and_says_so_at_once(
    cluster_factory: Callable[..., Cluster],
    gemini: GeminiEmulator,
    owner: Actor,
    webhook_receiver: WebhookReceiver,
) -> None:
    gemini.configure(latency=1.0, jitter=0)
    owner.api().post("/api/v1/webhook-endpoints", {"url": webhook_receiver.url}, format="json")
    created = submit(owner, mode="realtime", items=[{"prompt": "a"}, {"prompt": "b", "count": 2}])
    cluster_factory(BUNCH_WEBHOOKS_ALLOW_PRIVATE="true")
    seen: list[str] = []

    def finished() -> bool:
        status = get_batch(owner, created["id"])["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in Batch.FINISHED

    wait_until(finished, 60, "the batch to finish")

    assert seen[-2:] == ["running", "succeeded"]
    batch = Batch.objects.get(pk=created["id"])
    last_item = Job.objects.filter(batch=batch).aggregate(at=Max("finished_at"))["at"]
    assert dt.timedelta(0) <= batch.finished_at - last_item < dt.timedelta(seconds=1)
    sent = webhook_receiver.wait_for("batch.completed", timeout_s=5)
    assert sent.event["data"]["batch"]["id"] == created["id"]
    assert sent.arrived_at - batch.finished_at < dt.timedelta(seconds=1)


def test_batch_items_carry_their_batch_and_index_and_lists_filter_by_batch(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        created = submit(owner, mode="realtime", items=[{"prompt": "a"}, {"prompt": "b"}])
        owner.api().post("/api/v1/generations", {"prompt": "alone"}, format="json")

    listed = owner.api().get("/api/v1/generations", {"batch": created["id"]}).json()["results"]

    assert sorted((j["batch_id"], j["item_index"]) for j in listed) == [
        (created["id"], 0),
        (created["id"], 1),
    ]
    alone = owner.api().get("/api/v1/generations", {"status": "queued"}).json()["results"]
    assert [(j["batch_id"], j["item_index"]) for j in alone if j["prompt"] == "alone"] == [
        (None, None)
    ]
    items = owner.api().get(f"{BATCHES}/{created['id']}/items").json()["results"]
    assert [i["job"]["item_index"] for i in items] == [0, 1]


def test_a_bad_batch_filter_is_a_400(owner: Actor) -> None:
    response = owner.api().get("/api/v1/generations", {"batch": "nope"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_filter"


@pytest.mark.cluster
def test_cancelling_a_running_job_says_so_keeps_its_images_and_stops_new_calls(
    cluster_factory: Callable[..., Cluster], gemini: GeminiEmulator, owner: Actor
) -> None:
    gemini.configure(latency=0.7, jitter=0)
    cluster_factory(BUNCH_CALLS_PER_TASK="1")
    job = owner.api().post("/api/v1/generations", {"prompt": "x", "count": 6}, format="json").json()
    wait_until(lambda: Image.objects.filter(job_id=job["id"]).exists(), 30, "a first image")

    answer = owner.api().post(f"/api/v1/generations/{job['id']}/cancel")

    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["status"] == "running" and body["cancel_requested"] is True
    assert len(body["images"]) >= 1
    wait_until(lambda: Job.objects.get(pk=job["id"]).is_finished, 30, "the job to stop")
    final = owner.api().get(f"/api/v1/generations/{job['id']}").json()
    assert final["status"] == "canceled"
    assert len(body["images"]) <= len(final["images"]) < 6
    assert {i["id"] for i in body["images"]} <= {i["id"] for i in final["images"]}
