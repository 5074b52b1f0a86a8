"""A batch's progress as Server-Sent Events: `GET /api/v1/batches/{id}/events`."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django_q.conf import Conf

from batches.settle import batches_settle_open
from generation import tasks
from generation.models import Job
from tests.batches.conftest import BATCHES, submit
from tests.generation.test_waits_and_events import parse_events, read_stream
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator


def _run_batch_later(batch_id: str) -> threading.Thread:
    def work() -> None:
        from django.db import connection

        for job_id in Job.objects.filter(batch_id=batch_id).values_list("pk", flat=True):
            tasks.run_job(str(job_id))
        batches_settle_open()
        connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_batch_stream_reports_progress_as_items_finish_then_done(
    inline_worker: GeminiEmulator, owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    batch = submit(owner, mode="realtime", items=[{"prompt": "a mug"}, {"prompt": "a cup"}])
    worker = _run_batch_later(batch["id"])

    status, content_type, raw = read_stream(owner, f"{BATCHES}/{batch['id']}/events")
    worker.join(timeout=20)

    assert (status, content_type) == (200, "text/event-stream")
    events = parse_events(raw)
    kinds = [e["event"] for e in events]
    # The first event is the batch as it is when the stream opens: the worker thread may
    # already have claimed an item (the claim publishes `running` at once). The statuses
    # then only move forward.
    assert kinds[0] == "status" and events[0]["data"]["status"] in ("queued", "running")
    order = ["queued", "running", "succeeded"]
    seen = [order.index(e["data"]["status"]) for e in events if e["event"] == "status"]
    assert seen == sorted(seen) and seen[-1] == order.index("succeeded")
    progress = [e["data"] for e in events if e["event"] == "progress"]
    assert progress[0]["succeeded"] < 2
    assert progress[-1]["succeeded"] == 2 and progress[-1]["percent"] == 100
    assert kinds[-2:] == ["status", "done"]
    final: dict[str, Any] = owner.api().get(f"{BATCHES}/{batch['id']}").json()
    assert events[-1]["data"] == final and final["status"] == "succeeded"

    last = read_stream(owner, f"{BATCHES}/{batch['id']}/events", **{"Last-Event-ID": "end"})
    assert last[0] == 204


def test_another_tenants_batch_stream_is_404(
    inline_worker: GeminiEmulator, owner: Actor, outsider: Actor
) -> None:
    batch = submit(owner, mode="realtime", items=[{"prompt": "a mug"}])

    assert_error(outsider.api().get(f"{BATCHES}/{batch['id']}/events"), 404, "not_found")
