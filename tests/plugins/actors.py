"""The standing actors: an owner and a member of tenant A, and an outsider from tenant B."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from tenants.models import ApiKey, Membership, Plan, Tenant
from tenants.services import api_key_create, membership_set, tenant_create, user_get_or_create

PASSWORD = "correct-horse-battery-staple"


def rate_limit_queries() -> int:
    """Queries of the application's database a keyed API request spends on its rate-limit
    count: one with the database backend (PostgreSQL's table), none with Redis or SQLite's
    file of its own (tenants/ratelimit.py)."""
    from django.conf import settings

    return 1 if settings.RATE_LIMIT_BACKEND == "database" else 0


@dataclass
class Actor:
    user: Any
    tenant: Tenant
    role: str
    api_key: ApiKey
    key: str

    def api(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client


def make_plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {
        "slug": "test-plan",
        "name": "Test plan",
        "monthly_image_quota": 1000,
        "monthly_spend_cap": Decimal("100.00"),
        "requests_per_minute": 1000,
        "max_concurrent_jobs": 8,
        "markup_per_image": Decimal("0.01"),
        "allowed_tiers": ["lite", "flash", "pro"],
        "batch_allowed": True,
    }
    values.update(overrides)
    plan, _ = Plan.objects.update_or_create(slug=values["slug"], defaults=values)
    return plan


def make_actor(tenant: Tenant, email: str, role: str, scopes: list[str] | None = None) -> Actor:
    user = user_get_or_create(email=email, password=PASSWORD)
    membership_set(tenant=tenant, user=user, role=role)
    # The standing actors' keys hold every scope; narrow keys are made where they matter.
    scopes = scopes or list(ApiKey.SCOPES)
    issued = api_key_create(tenant=tenant, name=f"{role} key", scopes=scopes, created_by=user)
    return Actor(user=user, tenant=tenant, role=role, api_key=issued.api_key, key=issued.plaintext)


@pytest.fixture
def plan(db: None) -> Plan:
    return make_plan()


@pytest.fixture
def tenant_a(plan: Plan) -> Tenant:
    return tenant_create(name="Acme", slug="acme", plan=plan)


@pytest.fixture
def tenant_b(plan: Plan) -> Tenant:
    return tenant_create(name="Globex", slug="globex", plan=plan)


@pytest.fixture
def owner(tenant_a: Tenant) -> Actor:
    return make_actor(tenant_a, "owner@acme.test", Membership.Role.OWNER)


@pytest.fixture
def member(tenant_a: Tenant) -> Actor:
    return make_actor(tenant_a, "member@acme.test", Membership.Role.MEMBER)


@pytest.fixture
def outsider(tenant_b: Tenant) -> Actor:
    return make_actor(tenant_b, "owner@globex.test", Membership.Role.OWNER)


@pytest.fixture
def actor_factory(db: None) -> Callable[..., Actor]:
    return make_actor


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one API error shape, with the expected status and machine code."""
    assert response.status_code == status, response.content
    body = response.json()
    error = body["error"]
    assert error["code"] == code, body
    assert error["status"] == status
    assert error["message"]
    assert error["request_id"].startswith("req_")
    return error
