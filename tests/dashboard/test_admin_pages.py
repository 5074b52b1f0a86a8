from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client() -> Client:
    operator = User.objects.create_superuser("op", "op@bunch.test", "pw-op-123456")
    client = Client()
    client.force_login(operator)
    return client


@pytest.mark.parametrize(
    "model",
    [m for m in admin.site._registry if m._meta.app_label in ("tenants", "generation", "billing")],
    ids=lambda m: m._meta.label,
)
def test_every_admin_changelist_renders_for_operators(operator_client: Client, model: type) -> None:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert operator_client.get(url).status_code == 200


def test_admin_is_closed_to_tenant_users(owner) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(owner.user)
    response = client.get(reverse("admin:generation_job_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
