"""Another tenant's batches and templates are absent (404) on every endpoint; routing rules."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from batches.models import ProviderBatch
from billing.models import UsageEvent
from core.catalog import Mode
from generation.models import Job
from generation.services import JobParams, job_submit, route_mode
from tenants.models import Tenant
from tests.batches.conftest import BATCHES, TEMPLATES, poll_until, submit
from tests.plugins.actors import Actor, assert_error, make_plan
from tests.plugins.gemini import GeminiEmulator


def test_every_batch_and_template_endpoint_answers_404_to_another_tenant(
    owner: Actor, outsider: Actor
) -> None:
    batch = submit(owner, mode="realtime", items=[{"prompt": "a mug"}])
    template = owner.api().post(TEMPLATES, {"name": "t", "text": "A {thing}"}, format="json").json()
    b, t = f"{BATCHES}/{batch['id']}", f"{TEMPLATES}/{template['id']}"
    api = outsider.api()
    calls = [
        api.get(b),
        api.get(f"{b}/items"),
        api.post(f"{b}/cancel"),
        api.get(f"{b}/results.csv"),
        api.get(f"{b}/results.zip"),
        api.get(t),
        api.patch(t, {"name": "mine"}, format="json"),
        api.delete(t),
        api.post(f"{t}/preview", {"rows": [{"thing": "x"}]}, format="json"),
        api.post(BATCHES, {"template": template["id"], "rows": [{"thing": "x"}]}, format="json"),
    ]
    for response in calls:
        assert_error(response, 404, "not_found")
    assert api.get(BATCHES).json()["results"] == []
    assert api.get(TEMPLATES).json()["results"] == []
    assert_error(api.get(f"{BATCHES}/not-a-uuid"), 404, "not_found")


def test_read_only_key_can_list_and_preview_but_not_submit_or_cancel(
    owner: Actor, actor_factory: object
) -> None:
    reader = actor_factory(owner.tenant, "reader@acme.test", "member", scopes=["read"])  # type: ignore[operator]
    template = owner.api().post(TEMPLATES, {"name": "t", "text": "A {x}"}, format="json").json()
    preview = reader.api().post(
        f"{TEMPLATES}/{template['id']}/preview", {"rows": [{"x": "y"}]}, format="json"
    )
    assert preview.status_code == 200
    refused = reader.api().post(BATCHES, {"items": [{"prompt": "a"}]}, format="json")
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("priority", "deadline_h", "batch_allowed", "expected"),
    [
        ("economy", None, True, Mode.BATCH),
        ("economy", None, False, Mode.STANDARD),
        (None, 24, True, Mode.BATCH),
        (None, 48, True, Mode.BATCH),
        (None, 23.9, True, Mode.STANDARD),
        ("standard", 48, True, Mode.STANDARD),
        ("standard", None, True, Mode.STANDARD),
        (None, None, True, Mode.STANDARD),
    ],
)
def test_economy_priority_or_a_far_deadline_routes_to_batch_when_the_plan_allows(
    tenant_a: Tenant,
    priority: str | None,
    deadline_h: float | None,
    batch_allowed: bool,
    expected: str,
) -> None:
    make_plan(batch_allowed=batch_allowed)
    tenant_a.refresh_from_db()
    now = timezone.now()
    deadline = now + dt.timedelta(hours=deadline_h) if deadline_h is not None else None
    assert route_mode(tenant=tenant_a, priority=priority, deadline=deadline, now=now) == expected


def test_a_routed_single_job_goes_through_the_batch_api_at_the_batch_price(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    mode = route_mode(tenant=owner.tenant, priority="economy")
    job = job_submit(
        tenant=owner.tenant, params=JobParams(prompt="a quiet lake", mode=mode, count=2)
    )
    standard = job_submit(tenant=owner.tenant, params=JobParams(prompt="a quiet lake", count=2))
    assert job.estimated_cost < standard.estimated_cost

    poll_until(lambda: Job.objects.get(pk=job.pk).is_finished)

    job.refresh_from_db()
    assert job.status == "succeeded" and job.mode == "batch"
    assert ProviderBatch.objects.get(batch=None).job_ids == [str(job.pk)]
    assert {e.mode for e in UsageEvent.objects.filter(job=job)} == {"batch"}


def test_poll_batches_command_runs_until_every_batch_is_finished(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    from django.core.management import call_command

    from batches.models import Batch

    inline_worker.configure(batch_step_seconds=0.2)
    created = submit(owner, items=[{"prompt": "a pear"}, {"prompt": "a plum"}])

    call_command("poll_batches", "--until-idle", "--interval", "0.05", "--timeout", "20")

    assert Batch.objects.get(pk=created["id"]).status == "succeeded"


def test_generation_with_economy_priority_answers_with_batch_mode_and_the_half_price(
    owner: Actor,
) -> None:
    api = owner.api()
    economy = api.post(
        "/api/v1/generations", {"prompt": "a fern", "priority": "economy"}, format="json"
    )
    later = (timezone.now() + dt.timedelta(hours=30)).isoformat()
    by_deadline = api.post(
        "/api/v1/generations", {"prompt": "a fern", "deadline": later}, format="json"
    )
    now = api.post("/api/v1/generations", {"prompt": "a fern"}, format="json")

    assert economy.status_code == by_deadline.status_code == now.status_code == 202
    assert economy.json()["mode"] == by_deadline.json()["mode"] == "batch"
    assert now.json()["mode"] == "standard"
    assert Decimal(economy.json()["estimated_cost"]) < Decimal(now.json()["estimated_cost"])


def test_economy_priority_stays_standard_when_the_plan_has_no_batch(owner: Actor) -> None:
    make_plan(batch_allowed=False)
    response = owner.api().post(
        "/api/v1/generations", {"prompt": "a fern", "priority": "economy"}, format="json"
    )
    assert response.status_code == 202 and response.json()["mode"] == "standard"
