"""The dashboard's fallback settings: owners set and clear the policy the API uses;
members cannot; a price that is not a price, or a model outside the plan, is refused."""

from __future__ import annotations

from tests.dashboard.conftest import signed_in
from tests.plugins.actors import Actor

URL = "/settings/fallback/"


def test_owner_sets_and_clears_the_tenant_fallback_policy(owner: Actor) -> None:
    client = signed_in(owner)
    assert client.get(URL).status_code == 200
    body = {"enabled": "on", "models": ["flash"], "max_price_per_image": "0.08", "after_s": "15"}
    response = client.post(URL, body)
    assert response.status_code == 302
    owner.tenant.refresh_from_db()
    assert owner.tenant.fallback_policy == {
        "models": ["flash"],
        "max_price_per_image": "0.08",
        "after_s": 15.0,
    }
    assert owner.api().get("/api/v1/settings/fallback").json()["fallback"]["after_s"] == 15.0
    assert "0.08" in client.get(URL).content.decode()

    client.post(URL, {"max_price_per_image": "0.08"})
    owner.tenant.refresh_from_db()
    assert owner.tenant.fallback_policy is None


def test_fallback_form_refuses_no_models_and_models_outside_the_plan(owner: Actor) -> None:
    plan = owner.tenant.plan
    plan.allowed_tiers = ["lite", "flash"]
    plan.save()
    client = signed_in(owner)
    empty = client.post(URL, {"enabled": "on", "max_price_per_image": "0.08"})
    assert empty.status_code == 200 and "models must be" in empty.content.decode()
    outside = client.post(URL, {"enabled": "on", "models": ["pro"], "max_price_per_image": "1"})
    assert outside.status_code == 200
    owner.tenant.refresh_from_db()
    assert owner.tenant.fallback_policy is None


def test_members_cannot_change_the_fallback_policy(member: Actor) -> None:
    client = signed_in(member)
    assert client.get(URL).status_code == 403
    body = {"enabled": "on", "models": ["flash"], "max_price_per_image": "0.08"}
    assert client.post(URL, body).status_code == 403
    member.tenant.refresh_from_db()
    assert member.tenant.fallback_policy is None
