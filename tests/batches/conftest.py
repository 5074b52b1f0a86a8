"""Batches: the app's routes with the batch URLs mounted, and helpers that drive the poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from batches import dispatch
from batches.models import Batch
from tests.plugins.actors import Actor

BATCHES = "/api/v1/batches"
TEMPLATES = "/api/v1/templates"


@pytest.fixture(autouse=True)
def batch_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.batches.urls"


def submit(actor: Actor, expect: int = 202, **body: Any) -> dict[str, Any]:
    response = actor.api().post(BATCHES, body, format="json")
    assert response.status_code == expect, response.content
    return dict(response.json())


def get_batch(actor: Actor, batch_id: str) -> dict[str, Any]:
    response = actor.api().get(f"{BATCHES}/{batch_id}")
    assert response.status_code == 200, response.content
    return dict(response.json())


def poll_until(
    condition: Callable[[], bool], timeout_s: float = 20, on_pass: Callable[[], Any] | None = None
) -> None:
    """Run the scheduled poll pass until `condition` holds (the emulator works in real time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dispatch.poll()
        if on_pass is not None:
            on_pass()
        if condition():
            return
        time.sleep(0.02)  # the emulator's batch moves on its own clock
    raise AssertionError("condition not met before the deadline")


def finish(batch_id: str, timeout_s: float = 20) -> Batch:
    poll_until(lambda: Batch.objects.get(pk=batch_id).is_finished, timeout_s)
    return Batch.objects.get(pk=batch_id)
