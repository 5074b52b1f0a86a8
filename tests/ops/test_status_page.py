"""The operators' status page: staff only, now and the last hour from minute samples."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from generation import heartbeat
from generation.models import Job
from ops import readings, status, tasks
from ops.models import OpsSample
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

STATUS = "/admin/status/"


@pytest.mark.django_db
def test_the_status_page_is_for_staff_only(client: Client, owner: Actor) -> None:
    assert client.get(STATUS).status_code == 302  # to the admin login
    client.force_login(owner.user)
    assert client.get(STATUS).status_code == 302


def test_quantiles_follow_prometheus_histogram_quantile() -> None:
    buckets = {"1.0": 0.0, "2.0": 50.0, "4.0": 100.0, "+Inf": 100.0}
    assert status._quantile(buckets, 0.5) == 2.0
    assert status._quantile(buckets, 0.75) == 3.0
    assert status._quantile({}, 0.5) is None


def test_the_status_page_shows_the_hour_from_samples(
    inline_worker: GeminiEmulator, owner: Actor, admin_client: Client
) -> None:
    # The counters are cumulative across processes (and runs): the page takes differences.
    OpsSample.objects.create(
        taken_at=timezone.now() - dt.timedelta(minutes=30), data=readings.reading()
    )
    api = owner.api()
    assert (
        api.post(
            "/api/v1/generations", {"prompt": "a kite"}, format="json", HTTP_PREFER="wait=20"
        ).json()["status"]
        == "succeeded"
    )
    Job.objects.create(tenant=owner.tenant, prompt="q", model_prompt="q", aspect_ratio="1:1")
    heartbeat.beat(host="worker-a", pid=7, started_at=timezone.now())
    tasks.sample()

    page = admin_client.get(STATUS)
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("Provider (last hour)", "Queue by plan", "Stripe sync", "Workers", "1 alive"):
        assert text in html
    context: dict[str, Any] = page.context
    (row,) = context["provider"]
    assert (row["model"], row["calls"], row["rate_429"]) == ("gemini-3.1-flash-lite-image", 1, 0)
    assert context["plans"][0]["queued"] == 1
    assert context["top_queued"] == [(owner.tenant.slug, 1)]
    assert context["history"]["minutes"] == 2
    assert "<polyline" in html
