"""Remembered API keys (tenants/keycache.py): a change takes effect at once in the process
that makes it and within `BUNCH_API_KEY_CACHE_S` in any other."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.utils import timezone

from tenants import keycache
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_revoke, tenant_set_status
from tests.plugins.actors import Actor, assert_error
from tests.plugins.clock import FakeClock

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(keycache, "_clock", clock)
    return clock


def test_a_key_revoked_here_is_refused_on_the_next_request(owner: Actor, clock: FakeClock) -> None:
    assert owner.api().get(ME).status_code == 200  # remembered now

    api_key_revoke(api_key=owner.api_key)

    assert "revoked" in assert_error(owner.api().get(ME), 401, "invalid_api_key")["message"]


def test_a_tenant_suspended_here_is_refused_on_the_next_request(
    owner: Actor, clock: FakeClock
) -> None:
    assert owner.api().get(ME).status_code == 200

    tenant_set_status(tenant=owner.tenant, status=Tenant.Status.SUSPENDED)

    assert owner.api().get(ME).status_code == 403


def test_a_plan_edited_and_saved_shows_on_the_next_request(owner: Actor, clock: FakeClock) -> None:
    assert owner.api().get(ME).json()["tenant"]["plan"]["monthly_image_quota"] == 1000

    owner.tenant.plan.monthly_image_quota = 5000
    owner.tenant.plan.save()

    assert owner.api().get(ME).json()["tenant"]["plan"]["monthly_image_quota"] == 5000


def test_a_revocation_by_another_process_takes_effect_once_the_window_passes(
    owner: Actor, clock: FakeClock
) -> None:
    assert owner.api().get(ME).status_code == 200
    # Written without this process's services or signals, as another web process would.
    ApiKey.objects.filter(pk=owner.api_key.pk).update(revoked_at=timezone.now())

    clock.now += 1.9
    assert owner.api().get(ME).status_code == 200  # still within the 2 s window
    clock.now += 0.2
    assert_error(owner.api().get(ME), 401, "invalid_api_key")


@override_settings(BUNCH_API_KEY_CACHE_S=0)
def test_with_no_window_every_request_reads_the_key(owner: Actor, clock: FakeClock) -> None:
    assert owner.api().get(ME).status_code == 200
    ApiKey.objects.filter(pk=owner.api_key.pk).update(revoked_at=timezone.now())

    assert_error(owner.api().get(ME), 401, "invalid_api_key")


def test_each_lookup_gets_its_own_instances(owner: Actor, clock: FakeClock) -> None:
    first = keycache.api_key_by_prefix(owner.api_key.prefix)
    assert first is not None
    first.scopes.append("admin")
    first.tenant.name = "changed by one request"

    second = keycache.api_key_by_prefix(owner.api_key.prefix)

    assert second is not None
    assert second.scopes == owner.api_key.scopes
    assert second.tenant.name == owner.tenant.name
    assert second.tenant.plan.pk == owner.tenant.plan_id


def test_an_unknown_prefix_is_remembered_as_unknown_for_the_window_only(
    owner: Actor, clock: FakeClock
) -> None:
    assert keycache.api_key_by_prefix("bk_live_000000000000") is None
    ApiKey.objects.filter(pk=owner.api_key.pk).update(prefix="bk_live_000000000000")

    assert keycache.api_key_by_prefix("bk_live_000000000000") is None
    clock.now += 2.0
    found = keycache.api_key_by_prefix("bk_live_000000000000")
    assert found is not None and found.pk == owner.api_key.pk
