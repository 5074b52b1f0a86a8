"""The operators' status page: staff only, now and the last hour from minute samples."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from generation import heartbeat
from generation.budget import Ask, budget_take, cooldown_start
from generation.models import Job
from ops import readings, status, tasks
from ops.models import OpsSample
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

STATUS = "/admin/status/"
LITE, FLASH = "gemini-3.1-flash-lite-image", "gemini-3.1-flash-image"


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


def _generated(api: APIClient, prompt: str) -> None:
    body = {"prompt": prompt}
    answer = api.post("/api/v1/generations", body, format="json", HTTP_PREFER="wait=20")
    assert answer.json()["status"] == "succeeded"


def test_the_status_page_shows_the_hour_from_samples(
    inline_worker: GeminiEmulator, owner: Actor, admin_client: Client, settings: Any
) -> None:
    settings.GEMINI_MAX_IN_FLIGHT = 4
    # The counters are cumulative across processes (and runs): the page takes differences.
    OpsSample.objects.create(
        taken_at=timezone.now() - dt.timedelta(minutes=30), data=readings.reading()
    )
    api = owner.api()
    _generated(api, "a kite")  # in the hour, before "now"
    OpsSample.objects.create(
        taken_at=timezone.now() - dt.timedelta(minutes=2), data=readings.reading()
    )
    _generated(api, "[[fail:429x1]] a kite in a gust")  # a 429, then made: one call of two
    Job.objects.create(tenant=owner.tenant, prompt="q", model_prompt="q", aspect_ratio="1:1")
    heartbeat.beat(host="worker-a", pid=7, started_at=timezone.now())
    # A worker holds three slots of the Lite budget; a 429 cooled Flash down.
    budget_take(model=LITE, holder="worker-a:7:x", asks=[Ask(owner.tenant.pk)] * 3)
    cooldown_start(model=FLASH, seconds=45)
    tasks.sample()

    page = admin_client.get(STATUS)
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("Provider (last hour)", "Queue by plan", "Stripe sync", "Workers", "1 alive"):
        assert text in html
    context: dict[str, Any] = page.context
    (row,) = context["provider"]
    assert (row["model"], row["calls"], row["rate_429"]) == (LITE, 3, 1 / 3)
    assert context["plans"][0]["queued"] == 1
    assert context["top_queued"] == [(owner.tenant.slug, 1)]
    assert context["history"]["minutes"] == 3
    assert "<polyline" in html
    # The provider budget: in use against the budget, the hour's peak, the cooldown, and
    # the 429 rate now (since the sample two minutes ago) and over the hour.
    budget = {r["model"]: r for r in context["budget"]["rows"]}
    lite, flash = budget[LITE], budget[FLASH]
    assert (lite["in_use"], lite["slots"], lite["peak"], lite["cooldown_s"]) == (3, 4, 3, 0)
    assert (lite["rate_429_now"], lite["rate_429_hour"]) == (1 / 2, 1 / 3)
    assert 40 < flash["cooldown_s"] <= 45 and flash["rate_429_now"] is None
    assert "Provider budget" in html and "3 / 4" in html and "50 %" in html and "33 %" in html
