"""`billing_setup`: meters, prices and subscriptions, created once however often it runs."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings

from billing.models import MeterLine
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
    ids = ("line", "images_meter_id", "images_price_id", "amount_meter_id", "amount_price_id")
    lines = list(MeterLine.objects.values(*ids))
    tenants = list(Tenant.objects.values("stripe_customer_id", "stripe_subscription_id"))
    second = billing_setup()

    assert "customers created: 2; subscriptions created: 2" in first
    assert "customers created: 0; subscriptions created: 0" in second
    assert list(MeterLine.objects.values(*ids)) == lines
    assert list(Tenant.objects.values("stripe_customer_id", "stripe_subscription_id")) == tenants
    state = stripe_app.state()
    customers = {t["stripe_customer_id"] for t in tenants}
    assert len([c for c in state["customers"] if c["id"] in customers]) == 2
    assert len([s for s in state["subscriptions"] if s["customer"] in customers]) == 2
    names = [m["event_name"] for m in state["meters"]]
    assert names.count("bunch_images_lite_standard") == 1


def test_billing_setup_makes_two_meters_and_two_prices_per_line(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    billing_setup()

    assert MeterLine.objects.count() == len(MODELS) * 2
    line = MeterLine.objects.get(line="flash_batch")
    prices = {p["id"]: p for p in stripe_app.state()["prices"]}
    images, amount = prices[line.images_price_id], prices[line.amount_price_id]
    assert (images["recurring"]["meter"], images["unit_amount_decimal"]) == (
        line.images_meter_id,
        "0",
    )
    assert (amount["recurring"]["meter"], amount["unit_amount_decimal"]) == (
        line.amount_meter_id,
        "1",
    )
    owner.tenant.refresh_from_db()
    subscription = next(
        s
        for s in stripe_app.state()["subscriptions"]
        if s["id"] == owner.tenant.stripe_subscription_id
    )
    subscribed_prices = {item["price"]["id"] for item in subscription["items"]["data"]}
    assert subscribed_prices == {p for line in MeterLine.objects.all() for p in line.price_ids}


def test_billing_setup_does_nothing_when_billing_is_disabled(
    owner: Actor, stripe_app: StripeEmulator, settings: Settings
) -> None:
    settings.BILLING_ENABLED = False

    output = billing_setup()

    assert "billing is disabled" in output
    assert not MeterLine.objects.exists()
