"""Fixtures of the waits, event-stream and ASGI-front tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django_q.conf import Conf

from tests.plugins.gemini import GeminiEmulator


@pytest.fixture(params=["database", "redis"])
def news(request: pytest.FixtureRequest, settings: Any) -> str:
    """Which way the job's news travels: the database's own, or Redis pub/sub."""
    if request.param == "redis":
        settings.REDIS_URL = "redis://127.0.0.1:6379/14"
        settings.BUNCH_LIVE_CHANNEL = f"bunch_test_{uuid.uuid4().hex}"
    return str(request.param)


@pytest.fixture
def queued_worker(
    inline_worker: GeminiEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GeminiEmulator]:
    """Submitted jobs stay queued (no worker hears the doorbell) until `run_later` runs
    them from another thread, as a worker process would."""
    monkeypatch.setattr(Conf, "SYNC", False)
    inline_worker.configure(latency=0.3, jitter=0)
    yield inline_worker
