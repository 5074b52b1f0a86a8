from __future__ import annotations

import pytest
import time_machine

from tests.plugins.actors import Actor, assert_error, make_plan

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"


def test_request_over_the_limit_gets_429_with_headers_and_window_resets(owner: Actor) -> None:
    make_plan(requests_per_minute=3)
    owner.tenant.refresh_from_db()
    client = owner.api()
    with time_machine.travel("2026-11-27 12:00:10Z", tick=False) as clock:
        remaining = [client.get(ME)["RateLimit-Remaining"] for _ in range(3)]
        over = client.get(ME)
        clock.shift(60)
        after_reset = client.get(ME)

    assert remaining == ["2", "1", "0"]
    assert_error(over, 429, "rate_limited")
    assert over["Retry-After"] == "50"
    assert over["RateLimit-Limit"] == "3"
    assert over["RateLimit-Remaining"] == "0"
    assert over["RateLimit-Reset"] == "50"
    assert after_reset.status_code == 200
    assert after_reset["RateLimit-Remaining"] == "2"


def test_limit_is_per_tenant_across_keys(owner: Actor, member: Actor) -> None:
    make_plan(requests_per_minute=2)
    with time_machine.travel("2026-11-27 12:00:00Z", tick=False):
        assert owner.api().get(ME).status_code == 200
        assert member.api().get(ME).status_code == 200
        assert_error(member.api().get(ME), 429, "rate_limited")


def test_other_tenants_are_not_limited_by_a_busy_neighbour(owner: Actor, outsider: Actor) -> None:
    make_plan(requests_per_minute=1)
    with time_machine.travel("2026-11-27 12:00:00Z", tick=False):
        assert owner.api().get(ME).status_code == 200
        assert owner.api().get(ME).status_code == 429
        assert outsider.api().get(ME).status_code == 200
