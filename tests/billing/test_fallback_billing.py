"""A fallback is billed as the model that served it: its usage events sit on that model's
Stripe meter line, and Stripe's summaries of each line equal the ledger."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import django_q.conf
import pytest
from django.core.management import call_command
from django.test import Client

from billing.models import UsageEvent
from billing.stripe_gateway import StripeGateway
from billing.tasks import sync_usage
from tests.billing.conftest import ledger_quantities, stripe_quantities
from tests.plugins.actors import PASSWORD, Actor
from tests.plugins.gemini import GeminiEmulator

LITE = "gemini-3.1-flash-lite-image"


def _wait(actor: Actor, **body: Any) -> dict[str, Any]:
    response = actor.api().post("/api/v1/generations", body, format="json", HTTP_PREFER="wait=30")
    return dict(response.json())


def test_stripe_summaries_per_served_line_equal_the_ledger(
    inline_worker: GeminiEmulator,
    owner: Actor,
    gateway: StripeGateway,
    subscribed: Callable,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    settings.BUNCH_PROVIDER_MAX_DEFERRALS = 3
    subscribed(owner.tenant)
    # Lite works for the first job; then it is throttled and the second falls back.
    served_lite = _wait(owner, prompt="two avatars", count=2)
    assert served_lite["served_model"] == "lite"
    owner.api().put(
        "/api/v1/settings/fallback",
        {"models": ["flash"], "max_price_per_image": "0.10", "after_s": 0},
        format="json",
    )
    inline_worker.set_faults(retry_delay_s=5)
    inline_worker.set_faults(model=LITE, rate_429=1.0)
    served_flash = _wait(owner, prompt="three mockups", count=3)
    assert (served_flash["requested_model"], served_flash["served_model"]) == ("lite", "flash")

    assert sync_usage().startswith("sent 5,")

    lite = list(UsageEvent.objects.filter(job_id=served_lite["id"]))
    flash = list(UsageEvent.objects.filter(job_id=served_flash["id"]))
    assert {e.tier for e in flash} == {"flash"}
    assert stripe_quantities(gateway, owner.tenant, line="lite_standard") == ledger_quantities(
        lite, line="lite_standard"
    )
    assert stripe_quantities(gateway, owner.tenant, line="flash_standard") == ledger_quantities(
        flash, line="flash_standard"
    )
    assert sum(stripe_quantities(gateway, owner.tenant, line="markup").values()) == 5
    usage = owner.api().get("/api/v1/usage", {"group_by": "served_model"}).json()
    assert {g["key"]: g["images"] for g in usage["groups"]} == {"lite": 2, "flash": 3}
    [day] = usage["fallbacks"]
    assert (day["requested_model"], day["served_model"], day["reason"]) == (
        "lite",
        "flash",
        "primary_throttled",
    )
    assert day["images"] == 3
    assert Decimal(day["billed"]) == sum(e.billed for e in flash)
    # The dashboard's usage page lists the day's fallbacks.
    client = Client()
    assert client.login(username=owner.user.username, password=PASSWORD)
    page = client.get("/usage/").content.decode()
    assert 'data-testid="fallbacks"' in page and "model throttled" in page
    out = io.StringIO()
    call_command("billing_reconcile", stdout=out)
    assert "no differences" in out.getvalue()
