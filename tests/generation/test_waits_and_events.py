"""`Prefer: wait` and the job event stream, woken by the job's news (generation/live.py).

The job runs in another thread, as a worker would run it (the task function against the
Gemini emulator), while the request waits: on SQLite the web's poll finds the change, on
PostgreSQL its LISTEN, and with Redis its subscription (each CI pass covers its database;
the Redis case runs in both).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from django.test import AsyncClient
from django_q.conf import Conf

from generation import tasks
from generation.models import Job
from generation.streams import WAIT_GUARD_S
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator

GENERATIONS = "/api/v1/generations"
MARGIN_S = 1.0


def unsigned(job: dict[str, Any]) -> dict[str, Any]:
    """A job body without its images' signed links, which carry the time they were made."""
    images = [{k: v for k, v in i.items() if not k.endswith("_url")} for i in job["images"]]
    return {**job, "images": images}


def run_later(delay_s: float = 0.5, count: int = 1) -> threading.Thread:
    """Run the next `count` queued jobs once they exist, `delay_s` after."""

    def work() -> None:
        from django.db import connection

        deadline = time.monotonic() + 20
        ids: list[Any] = []
        while len(ids) < count and time.monotonic() < deadline:
            ids = list(Job.objects.filter(status=Job.Status.QUEUED).values_list("pk", flat=True))
            time.sleep(0.05)  # waiting for another thread's commit: no clock to move
        time.sleep(delay_s)
        for job_id in ids:
            tasks.run_job(str(job_id))
        connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_wait_is_answered_202_with_location_at_its_deadline_when_the_job_is_not_done(
    queued_worker: GeminiEmulator, owner: Actor
) -> None:
    started = time.monotonic()
    response = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=2")
    took = time.monotonic() - started

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert response["Location"] == body["links"]["self"] == f"{GENERATIONS}/{body['id']}"
    assert 2.0 - WAIT_GUARD_S <= took < 2.0 + MARGIN_S  # by its deadline, not long before


def test_a_waiting_submit_is_woken_by_the_job_finishing_in_another_worker(
    queued_worker: GeminiEmulator, owner: Actor, news: str
) -> None:
    worker = run_later(delay_s=0.5)
    started = time.monotonic()
    response = owner.api().post(
        GENERATIONS, {"prompt": "a fox"}, format="json", HTTP_PREFER="wait=20"
    )
    took = time.monotonic() - started
    worker.join(timeout=20)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "succeeded"
    assert len(body["images"]) == 1
    assert unsigned(body) == unsigned(owner.api().get(f"{GENERATIONS}/{body['id']}").json())
    assert took < 6, f"woken {took:.1f} s after submitting (job took ~1 s)"


def test_a_waiting_edit_is_woken_the_same_way(
    inline_worker: GeminiEmulator, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    image_id = first.json()["images"][0]["id"]
    monkeypatch.setattr(Conf, "SYNC", False)
    worker = run_later(delay_s=0.3)
    edit = owner.api().post(
        f"/api/v1/images/{image_id}/edits",
        {"instruction": "make it blue"},
        format="json",
        HTTP_PREFER="wait=20",
    )
    worker.join(timeout=20)

    assert edit.status_code == 200, edit.content
    assert edit.json()["status"] == "succeeded"
    assert edit.json()["images"][0]["parent_id"] == image_id


# Event streams ---------------------------------------------------------------------------


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in ("id", "event", "data"):
                fields[name] = json.loads(value) if name == "data" else value
        if "event" in fields:
            events.append(fields)
    return events


async def _read_stream(key: str, path: str, **headers: str) -> tuple[int, str, bytes]:
    response = await AsyncClient().get(path, headers={"Authorization": f"Bearer {key}", **headers})
    if not response.streaming:
        return response.status_code, response.get("Content-Type", ""), response.content
    chunks = [chunk async for chunk in response.streaming_content]
    return response.status_code, response["Content-Type"], b"".join(chunks)


def read_stream(actor: Actor, path: str, **headers: str) -> tuple[int, str, bytes]:
    """The whole stream, read through the ASGI handler as uvicorn would serve it."""
    return asyncio.run(asyncio.wait_for(_read_stream(actor.key, path, **headers), 30))


def test_a_job_stream_sends_status_image_and_done_events_as_the_job_runs(
    queued_worker: GeminiEmulator, owner: Actor, news: str
) -> None:
    job = owner.api().post(GENERATIONS, {"prompt": "x", "count": 2}, format="json").json()
    worker = run_later(delay_s=0.5)

    status, content_type, raw = read_stream(owner, f"{GENERATIONS}/{job['id']}/events")
    worker.join(timeout=20)

    assert status == 200
    assert content_type == "text/event-stream"
    events = parse_events(raw)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and events[0]["data"]["status"] == "queued"
    assert kinds.count("image") == 2
    assert kinds[-2:] == ["status", "done"]
    assert events[-2]["data"] == {"id": job["id"], "status": "succeeded"}
    assert events[-1]["id"] == "end"
    final = owner.api().get(f"{GENERATIONS}/{job['id']}").json()
    assert unsigned(events[-1]["data"]) == unsigned(final)
    streamed = {e["data"]["id"] for e in events if e["event"] == "image"}
    assert streamed == {i["id"] for i in final["images"]}
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids), ids


def test_last_event_id_resumes_after_what_the_client_saw_and_204_after_the_end(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = (
        owner.api()
        .post(GENERATIONS, {"prompt": "x", "count": 2}, format="json", HTTP_PREFER="wait=10")
        .json()
    )
    path = f"{GENERATIONS}/{job['id']}/events"
    everything = parse_events(read_stream(owner, path)[2])
    first_image = next(e for e in everything if e["event"] == "image")

    _, _, raw = read_stream(owner, path, **{"Last-Event-ID": first_image["id"]})
    resumed = parse_events(raw)
    status, _, _ = read_stream(owner, path, **{"Last-Event-ID": "end"})

    # a finished job: what it made, its final status, the end
    assert [e["event"] for e in everything] == ["image", "image", "status", "done"]
    assert [e["event"] for e in resumed] == ["image", "status", "done"]
    assert resumed[0]["data"]["id"] != first_image["data"]["id"]
    assert status == 204


def test_a_stream_ends_after_its_longest_life_and_a_reconnect_goes_on_from_its_last_event(
    queued_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    settings.BUNCH_EVENTS_MAX_S = 0.5
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json").json()
    path = f"{GENERATIONS}/{job['id']}/events"

    status, _, raw = read_stream(owner, path)  # no worker: the job stays queued
    first = parse_events(raw)
    assert status == 200
    assert [(e["event"], e["data"]["status"]) for e in first] == [("status", "queued")]

    worker = run_later(delay_s=0)
    worker.join(timeout=20)
    settings.BUNCH_EVENTS_MAX_S = 30
    _, _, raw = read_stream(owner, path, **{"Last-Event-ID": first[-1]["id"]})
    resumed = parse_events(raw)
    assert resumed[0]["event"] == "image"  # not the queued status again
    assert [e["event"] for e in resumed][-2:] == ["status", "done"]


def test_another_tenants_job_stream_is_404_and_no_key_is_401(
    inline_worker: GeminiEmulator, owner: Actor, outsider: Actor
) -> None:
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    path = f"{GENERATIONS}/{job.json()['id']}/events"

    assert_error(outsider.api().get(path), 404, "not_found")
    status, content_type, body = read_stream(outsider, path)
    assert (status, json.loads(body)["error"]["code"]) == (404, "not_found")
    assert content_type == "application/json"
    from rest_framework.test import APIClient

    assert APIClient().get(path).status_code == 401


async def _timed_events(key: str, path: str, until: str) -> list[tuple[float, dict[str, Any]]]:
    """Each event of a stream with the (wall clock) time it arrived, until one of type
    `until`."""
    response = await AsyncClient().get(path, headers={"Authorization": f"Bearer {key}"})
    seen: list[tuple[float, dict[str, Any]]] = []
    async for chunk in response.streaming_content:
        for event in parse_events(chunk):
            seen.append((time.time(), event))
            if event["event"] == until:
                return seen
    return seen


def test_a_job_stream_shows_running_as_soon_as_a_worker_claims_the_job(
    queued_worker: GeminiEmulator, owner: Actor, news: str, settings: Any
) -> None:
    settings.GEMINI_TIMEOUT_S = 15.0  # the pipeline fixtures' 2 s would fail the call
    # The model takes 4 s: `running` must come from the claim's news, not from the end.
    queued_worker.configure(latency=4.0, jitter=0)
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json").json()
    worker = run_later(delay_s=0.5)  # the worker's path: claim (and tell), call, store
    path = f"{GENERATIONS}/{job['id']}/events"
    seen = asyncio.run(asyncio.wait_for(_timed_events(owner.key, path, "done"), 30))
    worker.join(timeout=20)

    statuses = [(at, e["data"]["status"]) for at, e in seen if e["event"] == "status"]
    assert [s for _, s in statuses] == ["queued", "running", "succeeded"]
    claimed = Job.objects.get(pk=job["id"]).started_at  # set by the claim
    running_after = statuses[1][0] - claimed.timestamp()
    # Without the claim's news a stream looks again only every LOOK_AGAIN_S (5 s), and
    # the job's end (4 s after the claim) would wake it first.
    assert running_after < 2.0, f"`running` shown {running_after:.1f} s after the claim"
