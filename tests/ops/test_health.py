"""/readyz says which dependency is down; workers' heartbeats show whether any run."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from generation import heartbeat
from generation.models import WorkerHeartbeat
from ops import collectors
from tests.plugins.gemini import GeminiEmulator


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db
def test_readyz_is_ok_when_every_dependency_answers(
    client: Client, gemini: GeminiEmulator, settings: Any
) -> None:
    settings.GEMINI_BASE_URL = gemini.base_url
    heartbeat.beat(host="worker-a", pid=1, started_at=timezone.now())
    calls_before = gemini.stats()["by_model"]
    body = client.get("/readyz").json()
    assert body["status"] == "ok", body
    assert {body[k]["status"] for k in ("database", "broker", "storage", "provider")} == {"ok"}
    assert body["workers"] == {"alive": 1, "status": "ok"}
    assert gemini.stats()["by_model"] == calls_before  # reachability never calls a model


@pytest.mark.django_db
def test_readyz_is_503_naming_the_provider_when_it_cannot_be_reached(
    client: Client, settings: Any
) -> None:
    settings.GEMINI_BASE_URL = f"http://127.0.0.1:{_dead_port()}"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "provider unavailable"
    assert response.json()["provider"]["status"] == "error"
    assert response.json()["workers"]["status"] == "missing"


@pytest.mark.django_db
def test_healthz_stays_a_cheap_liveness_check(client: Client) -> None:
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_a_heartbeat_older_than_a_minute_counts_as_missing() -> None:
    now = timezone.now()
    started = now - dt.timedelta(hours=1)
    heartbeat.beat(host="a", pid=1, started_at=started, now=now - dt.timedelta(seconds=90))
    heartbeat.beat(host="b", pid=2, started_at=started, now=now - dt.timedelta(seconds=5))
    heartbeat.beat(host="b", pid=2, started_at=started, now=now)  # the same process again
    assert WorkerHeartbeat.objects.count() == 2
    assert collectors.workers_alive(now) == 1
    heartbeat.beat(host="c", pid=3, started_at=started, now=now + dt.timedelta(days=2))
    assert list(WorkerHeartbeat.objects.values_list("host", flat=True)) == ["c"]
