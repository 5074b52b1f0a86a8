"""Operators see each tenant's share and the provider budget, and cannot oversubscribe it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from generation import budget_redis, scheduler
from generation.budget import Ask, budget_take, cooldown_start
from generation.models import ProviderModel
from generation.services import JobParams, job_submit
from tenants.models import Plan, Tenant
from tenants.services import tenant_create
from tests.plugins.actors import make_plan

pytestmark = pytest.mark.django_db
MODEL = "gemini-3.1-flash-lite-image"


@pytest.fixture
def operator(django_user_model: type) -> Client:
    django_user_model.objects.create_superuser("ops", "ops@bunch.test", "ops-password-1")
    client = Client()
    client.login(username="ops", password="ops-password-1")
    return client


@pytest.fixture
def budget_of_ten(settings: Any) -> Any:
    settings.GEMINI_MAX_IN_FLIGHT = 10
    return settings


def _plan_form(plan: Plan, **changes: Any) -> dict[str, Any]:
    fields = {
        "name": plan.name,
        "slug": plan.slug,
        "monthly_image_quota": plan.monthly_image_quota,
        "monthly_spend_cap": plan.monthly_spend_cap,
        "requests_per_minute": plan.requests_per_minute,
        "max_concurrent_jobs": plan.max_concurrent_jobs,
        "weight": plan.weight,
        "reserved_concurrency": plan.reserved_concurrency,
        "markup_per_image": plan.markup_per_image,
        "allowed_tiers": '["lite"]',
        "monthly_price": plan.monthly_price,
    }
    return {**fields, **changes}


def test_a_plan_change_that_would_reserve_more_than_the_budget_is_refused(
    operator: Client, budget_of_ten: Any
) -> None:
    scale = make_plan(slug="scale", reserved_concurrency=0)
    for n in range(3):
        tenant_create(name=f"s{n}", slug=f"s{n}", plan=scale)

    refused = operator.post(
        f"/admin/tenants/plan/{scale.pk}/change/", _plan_form(scale, reserved_concurrency=4)
    )
    accepted = operator.post(
        f"/admin/tenants/plan/{scale.pk}/change/", _plan_form(scale, reserved_concurrency=3)
    )

    assert refused.status_code == 200  # the form again, with the error
    assert "Reservations would add up to 12 calls in flight" in refused.content.decode()
    assert accepted.status_code == 302
    scale.refresh_from_db()
    assert scale.reserved_concurrency == 3


def test_moving_a_tenant_onto_a_reserving_plan_past_the_budget_is_refused(
    operator: Client, budget_of_ten: Any
) -> None:
    reserving = make_plan(slug="reserving", reserved_concurrency=5)
    free = make_plan(slug="free")
    tenant_create(name="a", slug="a", plan=reserving)
    tenant_create(name="b", slug="b", plan=reserving)
    third = tenant_create(name="c", slug="c", plan=free)
    form = {"name": "c", "slug": "c", "plan": reserving.pk, "status": "active"}
    form.update(
        {
            f"{prefix}-{key}": value
            for prefix in ("memberships", "api_keys")
            for key, value in (("TOTAL_FORMS", 0), ("INITIAL_FORMS", 0))
        }
    )
    form["created_at_0"], form["created_at_1"] = "2026-01-01", "00:00:00"

    response = operator.post(f"/admin/tenants/tenant/{third.pk}/change/", form)

    assert "more than the provider budget of 10" in response.content.decode()
    third.refresh_from_db()
    assert third.plan == free


def test_the_scheduler_page_shows_each_tenants_work_share_and_reservation(
    operator: Client, django_capture_on_commit_callbacks: Any
) -> None:
    busy = tenant_create(
        name="Busy", slug="busy", plan=make_plan(slug="p1", max_concurrent_jobs=3, weight=2)
    )
    with django_capture_on_commit_callbacks(execute=False):
        for i in range(5):
            job_submit(tenant=busy, params=JobParams(prompt=f"p{i}"))
    scheduler.claim_jobs(limit=10)

    body = operator.get("/admin/generation/tenantshare/").content.decode()

    assert "Busy" in body
    assert '<td class="field-queued">2</td>' in body
    assert '<td class="field-running">3</td>' in body
    assert "100 %" in body


@pytest.fixture(params=["database", "redis"])
def budget_backend(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    settings.BUNCH_BUDGET_BACKEND = request.param
    if request.param == "redis":
        settings.BUNCH_BUDGET_REDIS_URL = "redis://127.0.0.1:6379/0"
        settings.BUNCH_BUDGET_REDIS_PREFIX = f"bunch-test-budget:{uuid.uuid4().hex[:12]}:"
    yield str(request.param)
    if request.param == "redis":
        budget_redis.forget_all()


def test_the_provider_budget_page_shows_calls_in_flight_against_the_budget(
    operator: Client, budget_of_ten: Any, budget_backend: str, tenant_a: Tenant
) -> None:
    now = timezone.now() - dt.timedelta(seconds=1)
    ProviderModel.objects.get_or_create(model=MODEL)  # (the row the page lists)
    budget_take(model=MODEL, holder="w1", asks=[Ask(tenant_a.pk)] * 3, now=now)
    until = cooldown_start(model=MODEL, seconds=120)

    body = operator.get("/admin/generation/providermodel/").content.decode()

    assert "3 / 10" in body  # in flight / budget
    assert "3 / no limit" in body  # started in the last minute / RPM
    assert f"{timezone.localtime(until):%Y-%m-%d %H:%M:%S}" in body
