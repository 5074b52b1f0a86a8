"""Operator admin: a changelist page of 100 rows costs a bounded number of queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from billing.models import UsageEvent
from generation.models import Job
from tenants.models import Plan, Tenant
from tenants.services import quota_period_for, tenant_create
from tests.plugins.actors import Actor

ROWS = 100
MAX_QUERIES = 15  # session, user, counts, the page itself, filter choices; never per row


@pytest.fixture
def operator(db: None, django_user_model: type) -> Client:
    django_user_model.objects.create_superuser("ops", "ops@bunch.test", "ops-password-1")
    client = Client()
    client.login(username="ops", password="ops-password-1")
    return client


@pytest.fixture
def hundred_tenants(plan: Plan) -> list[Tenant]:
    tenants = [tenant_create(name=f"T{i}", slug=f"t{i}", plan=plan) for i in range(ROWS)]
    for tenant in tenants[::3]:
        period = quota_period_for(tenant=tenant)
        period.images_used = 7
        period.save()
    return tenants


def test_tenant_changelist_shows_usage_this_period_in_bounded_queries(
    operator: Client, hundred_tenants: list[Tenant], django_assert_max_num_queries
) -> None:
    with django_assert_max_num_queries(MAX_QUERIES):
        response = operator.get("/admin/tenants/tenant/?all=")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Usage this period" in body
    assert body.count("7 / 1,000 images") == len(hundred_tenants[::3])


def _jobs(actor: Actor) -> list[Job]:
    return Job.objects.bulk_create(
        Job(tenant=actor.tenant, prompt=f"p{i}", model_prompt=f"p{i}", aspect_ratio="1:1")
        for i in range(ROWS)
    )


def test_job_changelist_page_of_100_is_bounded(
    operator: Client, owner: Actor, django_assert_max_num_queries
) -> None:
    _jobs(owner)
    with django_assert_max_num_queries(MAX_QUERIES):
        response = operator.get("/admin/generation/job/")
    assert response.status_code == 200
    assert response.content.decode().count('class="field-status"') == ROWS


def test_usage_event_changelist_page_of_100_is_bounded(
    operator: Client, owner: Actor, django_assert_max_num_queries
) -> None:
    jobs = _jobs(owner)
    UsageEvent.objects.bulk_create(
        UsageEvent(
            tenant=owner.tenant,
            job=job,
            tier="lite",
            model="gemini-3.1-flash-lite-image",
            mode="standard",
            provider_cost=Decimal("0.0336"),
            markup=Decimal("0.01"),
            billed=Decimal("0.0436"),
        )
        for job in jobs
    )
    with django_assert_max_num_queries(MAX_QUERIES):
        response = operator.get("/admin/billing/usageevent/")
    assert response.status_code == 200
    assert response.content.decode().count('class="field-stripe_state"') == ROWS


def test_job_changelist_searches_prompts_within_filters(operator: Client, owner: Actor) -> None:
    _jobs(owner)
    query = f"status__exact=queued&q=p7&tenant__id__exact={owner.tenant.pk}"
    response = operator.get(f"/admin/generation/job/?{query}")
    assert response.status_code == 200
    assert response.content.decode().count('class="field-status"') == 11  # p7, p70…p79
