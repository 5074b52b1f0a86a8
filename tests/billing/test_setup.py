"""`billing_setup`: meters, prices and subscriptions, created once however often it runs."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from billing.models import MeterLine, MeterSwitch, TokenMeter
from core.catalog import MODELS
from tenants.models import Tenant
from tests.plugins.actors import Actor
from tests.plugins.stripe import StripeEmulator

pytestmark = pytest.mark.django_db


def billing_setup(*args: str) -> str:
    out = io.StringIO()
    call_command("billing_setup", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_billing_setup_is_idempotent(
    owner: Actor, outsider: Actor, stripe_app: StripeEmulator
) -> None:
    first = billing_setup()
    ids = ("event_name", "meter_id", "price_id", "product_id")
    meters = list(TokenMeter.objects.order_by("event_name").values(*ids))
    tenants = list(Tenant.objects.values("stripe_customer_id", "stripe_subscription_id"))
    second = billing_setup()

    assert "customers created: 2; subscriptions created: 2" in first
    assert "customers created: 0; subscriptions created: 0" in second
    assert "prices added to subscriptions: 0" in second
    assert list(TokenMeter.objects.order_by("event_name").values(*ids)) == meters
    assert MeterSwitch.objects.count() == 1
    assert list(Tenant.objects.values("stripe_customer_id", "stripe_subscription_id")) == tenants
    state = stripe_app.state()
    customers = {t["stripe_customer_id"] for t in tenants}
    assert len([c for c in state["customers"] if c["id"] in customers]) == 2
    assert len([s for s in state["subscriptions"] if s["customer"] in customers]) == 2
    names = [m["event_name"] for m in state["meters"]]
    assert names.count("bunch_tokens_lite_standard_image_output_at_30_per_m") == 1


def test_billing_setup_makes_three_token_meters_per_line_priced_per_token_and_a_markup(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    billing_setup()

    tokens = TokenMeter.objects.exclude(kind="markup")
    assert tokens.count() == len(MODELS) * 2 * 3
    assert not MeterLine.objects.exists()  # a fresh database has no legacy meters
    prices = {p["id"]: p for p in stripe_app.state()["prices"]}
    expected = {  # cents per token: USD per 1M ÷ 10,000; batch at half
        "flash_batch": {"input": "0.000025", "text_output": "0.00015", "image_output": "0.003"},
        "lite_standard": {"input": "0.000025", "text_output": "0.00015", "image_output": "0.003"},
        "pro_standard": {"input": "0.0002", "text_output": "0.0012", "image_output": "0.012"},
    }
    for line, kinds in expected.items():
        tier, mode = line.split("_")
        for kind, unit in kinds.items():
            meter = tokens.get(tier=tier, mode=mode, kind=kind)
            price = prices[meter.price_id]
            assert (price["recurring"]["meter"], price["unit_amount_decimal"]) == (
                meter.meter_id,
                unit,
            ), (line, kind)
    markup = TokenMeter.objects.get(kind="markup")  # the owner's plan: $0.01 per image
    assert prices[markup.price_id]["unit_amount_decimal"] == "1"
    owner.tenant.refresh_from_db()
    subscription = next(
        s
        for s in stripe_app.state()["subscriptions"]
        if s["id"] == owner.tenant.stripe_subscription_id
    )
    subscribed_prices = {item["price"]["id"] for item in subscription["items"]["data"]}
    assert subscribed_prices == set(TokenMeter.objects.values_list("price_id", flat=True))


def test_billing_setup_does_nothing_when_billing_is_disabled(
    owner: Actor, stripe_app: StripeEmulator, settings: Settings
) -> None:
    settings.BILLING_ENABLED = False

    output = billing_setup()

    assert "billing is disabled" in output
    assert not TokenMeter.objects.exists()
