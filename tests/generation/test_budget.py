"""The provider budget every worker shares (generation/budget.py), with the time injected."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.utils import timezone

from generation import budget_redis
from generation.budget import (
    Ask,
    budget_in_use,
    budget_release,
    budget_take,
    cooldown_start,
    cooldown_until,
    leases_in_flight,
)
from generation.services import JobParams, job_submit
from tenants.models import Tenant
from tenants.services import tenant_create
from tests.plugins.actors import make_plan

pytestmark = pytest.mark.django_db
MODEL = "gemini-3.1-flash-lite-image"
T0 = timezone.now().replace(microsecond=0)


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _take(n: int, tenant: Tenant, at: float, holder: str = "w1", cost: int = 0) -> list[int]:
    asks = [Ask(tenant_id=tenant.pk, cost_nanos=cost)] * n
    taken = budget_take(model=MODEL, holder=holder, asks=asks, now=_at(at))
    return [lease for lease in taken.leases if lease is not None]


def _tenant(slug: str, **plan: Any) -> Tenant:
    return tenant_create(name=slug, slug=slug, plan=make_plan(slug=f"plan-{slug}", **plan))


@pytest.fixture(params=["database", "redis"])
def budget(request: Any, settings: Any) -> Any:
    """The same rules in both backends (Redis: a key prefix of this test's own)."""
    settings.BUNCH_BUDGET_BACKEND = request.param
    if request.param == "redis":
        settings.BUNCH_BUDGET_REDIS_URL = "redis://127.0.0.1:6379/0"
        settings.BUNCH_BUDGET_REDIS_PREFIX = f"bunch-test-budget:{uuid.uuid4().hex[:12]}:"
        request.addfinalizer(budget_redis.forget_all)
    settings.GEMINI_MAX_IN_FLIGHT = 4
    settings.GEMINI_RPM = 0
    settings.GEMINI_SPEND_PER_10_MIN_USD = 0
    settings.BUNCH_BUDGET_LEASE_S = 30
    return settings


def test_calls_in_flight_never_pass_the_budget_and_a_release_frees_a_slot(budget: Any) -> None:
    tenant = _tenant("acme")
    first = _take(6, tenant, at=0)
    assert len(first) == 4
    assert _take(1, tenant, at=1, holder="w2") == []

    budget_release(lease_ids=first[:1], now=_at(2))

    assert len(_take(3, tenant, at=2, holder="w2")) == 1
    assert budget_in_use(now=_at(2)) == {MODEL: 4}


def test_a_killed_workers_slots_come_back_when_their_lease_runs_out(budget: Any) -> None:
    tenant = _tenant("acme")
    assert len(_take(4, tenant, at=0, holder="killed")) == 4  # and never released

    assert _take(4, tenant, at=29, holder="w2") == []
    assert len(_take(4, tenant, at=30.5, holder="w2")) == 4


def test_the_rpm_window_counts_calls_started_in_the_last_minute(budget: Any) -> None:
    budget.GEMINI_MAX_IN_FLIGHT = 0
    budget.GEMINI_RPM = 3
    tenant = _tenant("acme")
    leases = _take(5, tenant, at=0)
    assert len(leases) == 3
    budget_release(lease_ids=leases, now=_at(1))

    taken = budget_take(model=MODEL, holder="w1", asks=[Ask(tenant.pk)], now=_at(20))
    assert taken.leases == [None]
    assert taken.retry_in_s == pytest.approx(40)
    assert len(_take(5, tenant, at=60.5)) == 3


def test_the_spend_window_holds_list_price_started_in_the_last_ten_minutes(budget: Any) -> None:
    budget.GEMINI_MAX_IN_FLIGHT = 0
    budget.GEMINI_SPEND_PER_10_MIN_USD = 0.10
    tenant = _tenant("acme")
    image = 33_600_000  # $0.0336 in nanos

    assert len(_take(5, tenant, at=0, cost=image)) == 2  # $0.0672; a third would pass $0.10
    assert _take(1, tenant, at=599, cost=image) == []
    assert len(_take(5, tenant, at=601, cost=image)) == 2


def test_a_reservation_is_lent_while_idle_and_honoured_once_work_arrives(
    budget: Any, django_capture_on_commit_callbacks: Any
) -> None:
    reserving = _tenant("reserving", reserved_concurrency=2)
    other = _tenant("other")
    # Idle: its two slots are lent.
    lent = _take(4, other, at=0)
    assert len(lent) == 4

    with django_capture_on_commit_callbacks(execute=False):
        job_submit(tenant=reserving, params=JobParams(prompt="now it has work"))
    budget_release(lease_ids=lent[:2], now=_at(1))

    # The two slots that free up are the reservation's: the other tenant cannot take them.
    assert _take(2, other, at=1) == []
    mine = _take(3, reserving, at=1.1)
    assert len(mine) == 2
    in_flight = {
        lease: reserved for lease, _, reserved in leases_in_flight(model=MODEL, now=_at(1.1))
    }
    assert {in_flight[lease] for lease in mine} == {True}
    # Beyond its reservation it shares like anyone: nothing is free now.
    assert _take(1, reserving, at=1.2) == []
    budget_release(lease_ids=lent[2:3], now=_at(2))
    assert len(_take(1, other, at=2)) == 1


def test_reserved_slots_are_asked_for_first_within_one_take(
    budget: Any, django_capture_on_commit_callbacks: Any
) -> None:
    reserving = _tenant("reserving", reserved_concurrency=1)
    other = _tenant("other")
    with django_capture_on_commit_callbacks(execute=False):
        job_submit(tenant=reserving, params=JobParams(prompt="x"))
    asks = [Ask(other.pk)] * 5 + [Ask(reserving.pk)]

    taken = budget_take(model=MODEL, holder="w1", asks=asks, now=_at(0))

    assert taken.leases[-1] is not None
    assert sum(lease is not None for lease in taken.leases[:5]) == 3


def test_a_cooldown_stops_every_take_until_the_time_the_provider_gave(budget: Any) -> None:
    tenant = _tenant("acme")
    until = cooldown_start(model=MODEL, seconds=5, now=_at(0))
    assert until == _at(5)
    # A shorter cooldown never cuts a longer one short.
    assert cooldown_start(model=MODEL, seconds=1, now=_at(1)) == _at(5)

    refused = budget_take(model=MODEL, holder="w2", asks=[Ask(tenant.pk)], now=_at(1))
    assert refused.leases == [None]
    assert refused.retry_in_s == pytest.approx(4)
    assert len(_take(1, tenant, at=5.01)) == 1
    assert cooldown_until(MODEL) == _at(5)  # every worker reads the same end
