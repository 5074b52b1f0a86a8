"""What an image costs, what it bills, and how totals round: from token counts, exactly."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from billing.pricing import cost_of, price_for
from billing.selectors import invoice_estimate
from billing.stripe_gateway import StripeGateway
from billing.sync import amount_cents, sync_pending
from core.catalog import MODELS, TokenUsage
from core.money import to_cents
from tests.billing.conftest import record_usage
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db

ONE_1K_IMAGE = TokenUsage(output_image_tokens=1120)


@pytest.mark.parametrize(
    ("tier", "mode", "expected"),
    [
        ("lite", "standard", Decimal("0.0336")),
        ("lite", "batch", Decimal("0.0168")),
        ("flash", "standard", Decimal("0.0672")),
        ("flash", "batch", Decimal("0.0336")),
        ("pro", "standard", Decimal("0.1344")),
        ("pro", "batch", Decimal("0.0672")),
    ],
)
def test_one_1k_image_costs_its_image_tokens_at_the_list_price_exactly(
    tier: str, mode: str, expected: Decimal
) -> None:
    price = price_for(model=MODELS[tier].model_id, mode=mode)

    cost = cost_of(usage=ONE_1K_IMAGE, price=price, markup=Decimal(0))

    assert cost.provider_cost == expected


def test_every_token_modality_is_priced_from_the_response_usage() -> None:
    usage = TokenUsage(
        input_text_tokens=200,  # $0.25/1M
        input_image_tokens=1120,  # $0.25/1M
        output_text_tokens=10,  # $1.50/1M
        thoughts_tokens=30,  # billed as text output
        output_image_tokens=1120,  # $30/1M
    )
    price = price_for(model=MODELS["lite"].model_id, mode="standard")

    cost = cost_of(usage=usage, price=price, markup=Decimal("0.01"))

    assert cost.provider_cost == Decimal("0.00033") + Decimal("0.00006") + Decimal("0.0336")
    assert cost.billed == cost.provider_cost + Decimal("0.01")


def test_ledger_row_bills_provider_cost_plus_the_plans_markup(owner: Actor) -> None:
    plan = owner.tenant.plan
    plan.markup_per_image = Decimal("0.0125")
    plan.save()

    (event,) = record_usage(owner.tenant, tier="pro", usage=ONE_1K_IMAGE)

    assert (event.provider_cost, event.markup) == (Decimal("0.1344"), Decimal("0.0125"))
    event.refresh_from_db()
    assert event.billed == Decimal("0.1469")
    assert amount_cents(event.billed) == Decimal("14.69")


def test_amount_meter_value_is_exact_cents_within_stripes_15_digits() -> None:
    assert str(amount_cents(Decimal("0.043600003"))) == "4.3600003"
    assert str(amount_cents(Decimal("12345.678901234"))) == "1234567.8901234"
    assert str(amount_cents(Decimal("0.010000000"))) == "1"
    assert str(amount_cents(Decimal("0E-9"))) == "0"


def test_rounding_is_half_up_once_per_line_total_not_per_image() -> None:
    assert to_cents(Decimal("0.025")) == Decimal("0.03")  # half up, not to even
    per_image = Decimal("0.0336")
    # 15 images: 50.4 cents → 50; rounding each image first would give 15 × 3 = 45
    assert to_cents(per_image * 15) == Decimal("0.50")


def test_invoice_line_rounds_half_up_and_stripes_invoice_agrees_with_the_ledger(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    plan = owner.tenant.plan
    plan.markup_per_image = Decimal("0.005")  # one image: a markup line of exactly 0.5 ¢
    plan.save()
    subscribed(owner.tenant)
    record_usage(owner.tenant, mode="batch", usage=ONE_1K_IMAGE)  # 1,120 × 0.0015 ¢ = 1.68 ¢
    assert sync_pending().sent == 1

    estimate = invoice_estimate(owner.tenant, gateway=gateway, now=owner.tenant.created_at)

    cents = {(line.line, line.kind): line.amount_cents for line in estimate.lines}
    # Half up, once per line: 1.68 → 2 and 0.5 → 1 (banker's rounding would say 0).
    assert cents == {("lite_batch", "image_output"): 2, ("markup", "markup"): 1}
    assert estimate.total_cents == 3
    assert gateway.invoice_preview(customer_id=owner.tenant.stripe_customer_id).total_cents == 3
    assert estimate.stripe_total_cents == 3


def test_one_display_rule_unit_prices_round_up_to_4_decimals_totals_to_cents() -> None:
    from core.money import show_cents, show_total, show_unit, show_up_to

    assert show_unit(Decimal("0.139412")) == "$0.1395"  # never reads below the charge
    assert show_unit(Decimal("0.0336")) == "$0.0336"
    assert show_total(Decimal("0.077250")) == "$0.08"  # a charge: half up, as invoiced
    assert show_total(Decimal("0.0725")) == "$0.07"
    assert show_up_to(Decimal("0.837012")) == "$0.84"
    assert show_up_to(Decimal("0.830001")) == "$0.84"  # a bound rounds up
    assert show_cents(50209) == "$502.09" and show_cents(-4870) == "-$48.70"
    assert show_cents(123456789) == "$1,234,567.89"
