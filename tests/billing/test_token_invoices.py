"""Invoices in tokens: Stripe's invoice (the emulator's preview and finalised invoice) lists
per line the tokens of each kind × the price book's price in cents per token and the
plan's markup per image, and equals the ledger's estimate line by line, to the cent."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing.models import MeterLine, MeterSwitch, Price, TokenMeter, UsageEvent
from billing.selectors import invoice_estimate
from billing.services import tenant_stripe_ids_set
from billing.setup import legacy_price_ids, lines_ensure, tenant_customer_ensure
from billing.stripe_gateway import InvoicePreview, StripeGateway
from billing.sync import meter_events, sync_pending, usage_id_from_identifier
from billing.tokens import line_amount_cents
from core.catalog import MODELS, Mode, TokenUsage
from tenants.models import Tenant
from tests.billing.conftest import ledger_cents, ledger_quantities, record_usage, stripe_quantities
from tests.billing.test_sync import stripe_totals
from tests.plugins.actors import Actor, make_plan
from tests.plugins.stripe import StripeEmulator

pytestmark = pytest.mark.django_db


def sync_all() -> None:
    for _ in range(20):
        if not UsageEvent.objects.filter(stripe_state="pending").exists():
            return
        sync_pending()
    raise AssertionError("usage still pending")


def usage_lines(preview: InvoicePreview) -> dict[str, int]:
    """The invoice's lines with usage (description → cents): metered lines of 0 left out."""
    return {
        line.description: line.amount_cents
        for line in preview.lines
        if line.quantity and not line.proration and "monthly fee" not in line.description
    }


def estimate_lines(gateway: StripeGateway, tenant: Tenant) -> dict[str, int]:
    tenant.refresh_from_db()
    estimate = invoice_estimate(tenant, gateway=gateway, now=tenant.created_at)
    return {line.description: line.amount_cents for line in estimate.lines}


def preview(gateway: StripeGateway, tenant: Tenant) -> InvoicePreview:
    tenant.refresh_from_db()
    return gateway.invoice_preview(customer_id=tenant.stripe_customer_id)


def _set_markup(tenant: Tenant, markup: str) -> None:
    plan = tenant.plan
    plan.markup_per_image = Decimal(markup)
    plan.save()


def test_one_image_of_each_model_and_mode_is_invoiced_as_tokens_times_price(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    _set_markup(owner.tenant, "0.005")
    subscribed(owner.tenant)
    usage = TokenUsage(
        input_text_tokens=37,
        input_image_tokens=1120,
        output_text_tokens=11,
        thoughts_tokens=258,
        output_image_tokens=1120,
    )
    events = []
    for tier, mode in itertools.product(MODELS, Mode.values):
        events += record_usage(owner.tenant, tier=tier, mode=mode, usage=usage)
    sync_all()

    invoice = preview(gateway, owner.tenant)
    lines = usage_lines(invoice)

    assert stripe_quantities(gateway, owner.tenant) == ledger_quantities(events)
    for event in events:
        price = Price.objects.get(model=event.model, mode=event.mode)
        for tokens, per_million in (
            (37 + 1120, price.input_per_million),
            (11 + 258, price.text_output_per_million),
            (1120, price.image_output_per_million),
        ):
            cents = line_amount_cents(tokens, Decimal(per_million) / 10_000)
            assert cents in lines.values()
    assert lines["Nano Banana 2 Lite: image output, 1,120 tokens × $0.00003 = $0.03"] == 3
    assert lines["Nano Banana 2 Lite (batch): image output, 1,120 tokens × $0.000015 = $0.02"] == 2
    assert lines["Nano Banana Pro: input, 1,157 tokens × $0.000002 = $0.00"] == 0
    assert lines["Nano Banana Pro: text output, 269 tokens × $0.000012 = $0.00"] == 0
    assert lines["Markup, 6 images × $0.005 = $0.03"] == 3
    assert len(lines) == 6 * 3 + 1
    assert lines == estimate_lines(gateway, owner.tenant)
    assert invoice.total_cents == sum(lines.values())
    # Rounded once per line, so the invoice is within half a cent a line of the exact sum.
    assert abs(invoice.total_cents - ledger_cents(events)) <= Decimal("0.5") * len(lines)


def test_a_thousand_mixed_images_invoice_equals_the_ledger(
    owner: Actor, gateway: StripeGateway, subscribed: Callable, stripe_app: StripeEmulator
) -> None:
    _set_markup(owner.tenant, "0.005")
    subscribed(owner.tenant)
    events = []
    # Ten kinds of request: prompts of different lengths, 0–3 input images, some thinking.
    for n in range(10):
        usage = TokenUsage(
            input_text_tokens=9 + 17 * n,
            input_image_tokens=1120 * (n % 4),
            thoughts_tokens=(0, 96, 258)[n % 3],
            output_image_tokens=1120,
        )
        events += record_usage(owner.tenant, n=100, usage=usage)
    sync_all()

    invoice = preview(gateway, owner.tenant)
    lines = usage_lines(invoice)
    estimated = estimate_lines(gateway, owner.tenant)
    finalised = stripe_app.finalize_invoice(owner.tenant.stripe_customer_id)

    assert lines["Nano Banana 2 Lite: image output, 1,120,000 tokens × $0.00003 = $33.60"] == 3360
    assert lines["Markup, 1,000 images × $0.005 = $5.00"] == 500
    input_tokens = sum(e.input_text_tokens + e.input_image_tokens for e in events)
    assert input_tokens == 1_541_500
    assert lines["Nano Banana 2 Lite: input, 1,541,500 tokens × $0.00000025 = $0.39"] == 39
    assert lines["Nano Banana 2 Lite: text output, 106,200 tokens × $0.0000015 = $0.16"] == 16
    assert lines == estimated
    assert invoice.total_cents == 3360 + 500 + 39 + 16
    assert ledger_cents(events) == Decimal("3914.4675")  # exact; four lines rounded once each
    assert finalised["total"] == invoice.total_cents
    finalised_lines = {line["description"] for line in finalised["lines"]["data"]}
    assert set(lines) <= finalised_lines


def test_the_markup_is_priced_per_plan_on_each_plans_subscription(
    owner: Actor, outsider: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    _set_markup(owner.tenant, "0.005")
    outsider.tenant.plan = make_plan(
        slug="premium", name="Premium", markup_per_image=Decimal("0.02")
    )
    outsider.tenant.save()
    for tenant in (owner.tenant, outsider.tenant):
        subscribed(tenant)
        record_usage(tenant, n=3)
    sync_all()

    mine, theirs = (
        usage_lines(preview(gateway, owner.tenant)),
        usage_lines(preview(gateway, outsider.tenant)),
    )

    assert mine["Markup, 3 images × $0.005 = $0.02"] == 2  # 1.5 ¢, half up
    assert theirs["Markup, 3 images × $0.02 = $0.06"] == 6
    markups = {m.price_id: m for m in TokenMeter.objects.filter(kind="markup")}
    for tenant, markup in ((owner.tenant, "0.5"), (outsider.tenant, "2")):
        tenant.refresh_from_db()
        held = gateway.retrieve_subscription(subscription_id=tenant.stripe_subscription_id)
        on_it = [markups[i.price_id] for i in held.items if i.price_id in markups]
        assert [m.unit_cents for m in on_it] == [Decimal(markup)]
        assert usage_lines(preview(gateway, tenant)) == estimate_lines(gateway, tenant)


def test_a_plan_change_mid_period_keeps_the_old_markup_for_the_images_billed_at_it(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    _set_markup(owner.tenant, "0.005")
    subscribed(owner.tenant)
    make_plan(slug="premium", name="Premium", markup_per_image=Decimal("0.02"))
    before = record_usage(owner.tenant, n=2)
    sync_all()

    response = owner.api().post("/api/v1/billing/checkout", {"plan": "premium"}, format="json")
    assert response.status_code == 200, response.content
    owner.tenant.refresh_from_db()
    after = record_usage(owner.tenant, n=4)
    sync_all()

    lines = usage_lines(preview(gateway, owner.tenant))
    assert lines["Markup, 2 images × $0.005 = $0.01"] == 1
    assert lines["Markup, 4 images × $0.02 = $0.08"] == 8
    assert lines == estimate_lines(gateway, owner.tenant)
    assert stripe_quantities(gateway, owner.tenant) == ledger_quantities(before + after)


def test_a_price_book_change_mid_period_starts_a_new_price_and_keeps_the_old_line(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    old = record_usage(owner.tenant, n=5)
    sync_all()
    Price.objects.filter(model=MODELS["lite"].model_id, mode="standard").update(
        image_output_per_million=Decimal("24")
    )
    new = record_usage(owner.tenant, n=3)
    sync_all()

    lines = usage_lines(preview(gateway, owner.tenant))

    assert lines["Nano Banana 2 Lite: image output, 5,600 tokens × $0.00003 = $0.17"] == 17
    assert lines["Nano Banana 2 Lite: image output, 3,360 tokens × $0.000024 = $0.08"] == 8
    assert lines == estimate_lines(gateway, owner.tenant)
    assert stripe_quantities(gateway, owner.tenant) == ledger_quantities(old + new)
    meters = TokenMeter.objects.filter(tier="lite", mode="standard", kind="image_output")
    assert sorted(m.unit_cents for m in meters) == [Decimal("0.0024"), Decimal("0.003")]
    owner.tenant.refresh_from_db()
    held = gateway.retrieve_subscription(subscription_id=owner.tenant.stripe_subscription_id)
    assert {m.price_id for m in meters} <= {i.price_id for i in held.items}  # both, until renewal


def test_usage_by_line_lists_the_invoices_lines(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    record_usage(
        owner.tenant, n=4, usage=TokenUsage(input_text_tokens=20, output_image_tokens=1120)
    )
    record_usage(owner.tenant, tier="flash", mode="batch")
    sync_all()

    body = owner.api().get("/api/v1/usage", {"group_by": "line"}).json()

    lines = {g["line"]["description"]: g["line"]["amount_cents"] for g in body["groups"]}
    assert lines == usage_lines(preview(gateway, owner.tenant))
    image = next(g for g in body["groups"] if g["key"] == "lite_standard.image_output@0.00003")
    assert (image["images"], image["tokens"]["output_image"], image["billed"]) == (
        4,
        4480,
        "0.134400000",
    )
    assert image["line"]["unit_price"] == "0.00003"
    assert body["total"]["images"] == 5


def test_a_unit_price_with_more_than_12_decimals_is_refused_as_stripe_does(
    gateway: StripeGateway,
) -> None:
    from billing.stripe_gateway import StripePermanentError

    meter = gateway.ensure_meter(event_name="bunch_test_decimals", display_name="decimals")
    product = gateway.ensure_product(name="decimals", lookup="bunch_test_decimals")
    kept = gateway.ensure_metered_price(
        product_id=product, meter_id=meter, unit_amount_decimal=Decimal("0.000000000001"),
        lookup_key="bunch_test_decimals_12",
    )  # fmt: skip

    with pytest.raises(StripePermanentError) as refused:
        gateway.ensure_metered_price(
            product_id=product, meter_id=meter, unit_amount_decimal=Decimal("0.0000000000001"),
            lookup_key="bunch_test_decimals_13",
        )  # fmt: skip

    assert kept.startswith("price_")
    assert refused.value.http_status == 400
    assert "at most 12 decimal places" in refused.value.message


def test_the_switch_over_from_the_legacy_meters_bills_every_image_once(
    owner: Actor, gateway: StripeGateway, stripe_app: StripeEmulator
) -> None:
    # Before the upgrade: the legacy meters, a subscription to them, usage the old sync sent.
    tenant = owner.tenant
    lines_ensure(gateway=gateway)
    tenant_customer_ensure(tenant=tenant, gateway=gateway)
    subscription = gateway.create_subscription(
        customer_id=tenant.stripe_customer_id, price_ids=legacy_price_ids()
    )
    tenant_stripe_ids_set(tenant=tenant, subscription_id=subscription.id)
    started = dt.datetime.fromtimestamp(subscription.items[0].current_period_start or 0, dt.UTC)
    sent_before = record_usage(tenant, n=3, occurred_at=started)
    pending_before = record_usage(tenant, tier="flash", n=2, occurred_at=started)
    old = [e.pk for e in sent_before + pending_before]
    UsageEvent.objects.filter(pk__in=old).update(  # stored by the old code: no rates
        input_per_million=None, text_output_per_million=None, image_output_per_million=None
    )
    line = MeterLine.objects.get(line="lite_standard")
    for event in sent_before:
        for meter_event in meter_events(
            event=event, line=line, customer_id=subscription.customer_id
        ):
            gateway.send_meter_event(
                event_name=meter_event.event_name, customer_id=subscription.customer_id,
                identifier=meter_event.identifier, value=meter_event.value,
                timestamp=meter_event.timestamp,
            )  # fmt: skip
    UsageEvent.objects.filter(pk__in=[e.pk for e in sent_before]).update(stripe_state="sent")

    out = io.StringIO()
    call_command("billing_setup", stdout=out)  # the upgrade: token meters from now on
    after = record_usage(tenant, n=4) + record_usage(tenant, mode="batch", n=2)
    sync_all()

    assert f"prices added to subscriptions: {3 * 2 * 3 + 1}" in out.getvalue()
    switch = MeterSwitch.objects.get().token_meters_from
    assert all(e.occurred_at < switch for e in sent_before + pending_before)
    kinds: dict[int, set[str]] = {}
    for held in stripe_app.state()["meter_events"]:
        usage_id = usage_id_from_identifier(held["identifier"])
        if held["customer"] == subscription.customer_id and usage_id:
            kinds.setdefault(usage_id, set()).add(held["identifier"].rsplit(".", 1)[1])
    assert all(kinds[pk] == {"images", "amount"} for pk in old)  # never on both
    assert all(kinds[e.pk] == {"input", "image_output", "markup"} for e in after)
    assert stripe_totals(gateway, tenant, "flash_standard") == (2, ledger_cents(pending_before))
    assert stripe_quantities(gateway, tenant) == ledger_quantities(after)
    reconciled = io.StringIO()
    call_command("billing_reconcile", stdout=reconciled)
    assert "no differences" in reconciled.getvalue()
    held = gateway.retrieve_subscription(subscription_id=subscription.id)
    assert set(legacy_price_ids()) <= {i.price_id for i in held.items}  # kept for the period
    invoice = preview(gateway, tenant)
    tenant.refresh_from_db()
    estimate = invoice_estimate(tenant, gateway=gateway, now=tenant.created_at)
    assert invoice.total_cents == estimate.total_cents
    assert {"legacy", "image_output", "markup"} <= {line.kind for line in estimate.lines}
