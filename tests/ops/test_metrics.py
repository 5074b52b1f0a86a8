"""/metrics: Prometheus text behind a bearer token, counters that agree with the database
after a small run, and gauges read from the database when scraped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from billing.models import UsageEvent
from generation.budget import Ask, budget_in_use, budget_take, cooldown_start
from generation.models import Image, Job
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

TOKEN = "metrics-test-token-0123456789"
LITE, FLASH = "gemini-3.1-flash-lite-image", "gemini-3.1-flash-image"


def scrape(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            values[key] = values.get(key, 0.0) + sample.value
    return values


def total(values: dict[Any, float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in values.items() if n == name and want <= set(lab))


@pytest.fixture
def metrics_token(settings: Any) -> str:
    settings.BUNCH_METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.django_db
def test_metrics_are_404_without_the_right_token(client: Client, settings: Any) -> None:
    settings.BUNCH_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404
    settings.BUNCH_METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_a_small_run_is_counted_as_the_database_says(
    inline_worker: GeminiEmulator,
    owner: Actor,
    metrics_token: str,
    client: Client,
    settings: Any,
) -> None:
    settings.GEMINI_MAX_IN_FLIGHT = 4  # the run's calls take (and give back) budget slots
    before = scrape(client)
    api = owner.api()
    for count in (1, 2):
        response = api.post(
            "/api/v1/generations",
            {"prompt": "a teal teapot", "count": count},
            format="json",
            HTTP_PREFER="wait=20",
        )
        assert response.json()["status"] == "succeeded"
    failed = api.post(
        "/api/v1/generations", {"prompt": "[[block]] a fox"}, format="json", HTTP_PREFER="wait=20"
    )
    assert failed.json()["status"] == "failed"
    Job.objects.create(
        tenant=owner.tenant, prompt="waits", model_prompt="waits", aspect_ratio="1:1"
    )  # queued, never run: the queue gauge must show it
    # A worker elsewhere holds two slots of the Lite budget, and a 429 cooled Flash down.
    budget_take(model=LITE, holder="worker-b:1:x", asks=[Ask(owner.tenant.pk)] * 2)
    cooldown_start(model=FLASH, seconds=30)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    plan = owner.tenant.plan.slug
    assert delta("bunch_jobs_submitted_total", plan=plan) == 3
    assert (
        delta("bunch_jobs_finished_total", status="succeeded")
        == Job.objects.filter(status="succeeded").count()
        == 2
    )
    assert delta("bunch_jobs_finished_total", status="failed") == 1
    assert delta("bunch_jobs_started_total", plan=plan) == 3
    assert delta("bunch_images_stored_total") == Image.objects.count() == 3
    assert delta("bunch_image_bytes_stored_total") == sum(
        Image.objects.values_list("size_bytes", flat=True)
    )
    assert delta("bunch_provider_calls_total", outcome="ok") == 3
    assert delta("bunch_provider_calls_total", outcome="safety") == 1
    assert delta("bunch_provider_call_duration_seconds_count") == 4
    assert (
        delta("bunch_http_requests_total", route="/api/v1/generations", method="POST", status="200")
        == 3
    )
    # Gauges are the database's state at the scrape.
    assert total(after, "bunch_queue_jobs", plan=plan) == 1
    assert (
        total(after, "bunch_usage_events", state="pending")
        == UsageEvent.objects.filter(stripe_state="pending").count()
        == 3
    )
    assert total(after, "bunch_stripe_sync_lag_seconds") > 0
    assert total(after, "bunch_top_tenant_queued_jobs", tenant=owner.tenant.slug) == 1
    # The provider budget: slots allowed and held per model, and the cooldowns.
    assert total(before, "bunch_provider_budget_slots_in_use") == 0
    assert total(after, "bunch_provider_budget_slots", model=LITE) == 4
    assert total(after, "bunch_provider_budget_slots_in_use", model=LITE) == budget_in_use()[LITE]
    assert budget_in_use() == {LITE: 2}  # the run's own slots were all given back
    assert total(after, "bunch_provider_cooldown_active", model=FLASH) == 1
    assert total(after, "bunch_provider_cooldown_active", model=LITE) == 0
    assert 0 < total(after, "bunch_provider_cooldown_remaining_seconds", model=FLASH) <= 30


def _metrics_dir_of_a_process(**env: str | None) -> Path:
    """The metrics directory that a process started with this environment counts in."""
    environ = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    code = "from django.conf import settings; print(settings.METRICS_DIR)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        check=True,
        text=True,
        cwd=settings.BASE_DIR,
    )
    return Path(out.stdout.strip())


def test_each_test_session_counts_in_a_metrics_directory_of_its_own(tmp_path: Path) -> None:
    shared = str(tmp_path / "shared")  # what two runs on one host would otherwise share
    mine = Path(settings.METRICS_DIR)
    assert mine != settings.VAR_DIR / "metrics"
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(mine)  # what prometheus_client read
    # The workers and servers this session starts count into its directory...
    assert _metrics_dir_of_a_process(PROMETHEUS_MULTIPROC_DIR=shared) == mine
    # ...and another session, even one told to share a directory, gets one of its own.
    other = _metrics_dir_of_a_process(PROMETHEUS_MULTIPROC_DIR=shared, BUNCH_TEST_METRICS_DIR=None)
    assert other not in (mine, Path(shared))
    assert other.is_dir() and not any(other.iterdir())
