from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tenants.models import ApiKey, Membership, Plan, Tenant

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_demo_is_idempotent_and_prints_a_working_key() -> None:
    _run("seed_demo")
    output = _run("seed_demo")

    assert Plan.objects.count() == 3
    assert Tenant.objects.filter(slug__in=["acme", "globex"]).count() == 2
    roles = dict(Membership.objects.filter(tenant__slug="acme").values_list("user__email", "role"))
    assert roles == {"owner@acme.test": "owner", "member@acme.test": "member"}
    assert "owner@acme.test" in output
    key = output.strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/me").json()["tenant"]["slug"] == "acme"


def test_create_tenant_and_api_key_print_the_key_last() -> None:
    _run("seed_demo", "--no-key")
    _run(
        "create_tenant",
        "--name",
        "Initech",
        "--slug",
        "initech",
        "--plan",
        "starter",
        "--owner-email",
        "bill@initech.test",
    )
    key = _run("create_api_key", "--tenant", "initech", "--name", "ci", "--scopes", "read")
    key = key.strip().splitlines()[-1]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = client.get("/api/v1/me").json()
    assert body["tenant"]["plan"]["slug"] == "starter"
    assert body["scopes"] == ["read"]
    assert ApiKey.objects.get(tenant__slug="initech").secret_hash not in key


def test_create_tenant_with_unknown_plan_names_the_known_ones() -> None:
    _run("seed_demo", "--no-key")
    with pytest.raises(CommandError, match="Known plans: free, starter, scale"):
        _run("create_tenant", "--name", "X", "--slug", "x", "--plan", "gold")


def test_create_api_key_refuses_unknown_scope() -> None:
    _run("seed_demo", "--no-key")
    with pytest.raises(CommandError, match="Unknown scope"):
        _run("create_api_key", "--tenant", "acme", "--name", "x", "--scopes", "admin")
