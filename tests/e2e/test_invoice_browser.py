"""The estimated-invoice panel in a real browser: the lines of Stripe's upcoming invoice,
in tokens × price per line and markup per image, and its total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.stripe_gateway import StripeGateway
from billing.sync import sync_pending
from core.catalog import TokenUsage
from tests.billing.conftest import (  # noqa: F401 (fixtures)
    gateway,
    record_usage,
    stripe_app,
    subscribed,
)
from tests.e2e.conftest import screenshot, sign_in
from tests.plugins.actors import Actor

pytestmark = pytest.mark.browser


def test_the_estimated_invoice_panel_shows_stripes_lines_in_tokens_and_the_markup(
    page: Page,
    site: str,
    owner: Actor,
    gateway: StripeGateway,  # noqa: F811
    subscribed: object,  # noqa: F811
) -> None:
    plan = owner.tenant.plan
    plan.markup_per_image = Decimal("0.005")
    plan.save()
    subscribed(owner.tenant)  # type: ignore[operator]
    usage = TokenUsage(input_text_tokens=40, input_image_tokens=1120, output_image_tokens=1120)
    record_usage(owner.tenant, n=25, usage=usage)
    assert sync_pending().sent == 25
    owner.tenant.refresh_from_db()
    upcoming = gateway.invoice_preview(customer_id=owner.tenant.stripe_customer_id)
    stripe_lines = [line.description for line in upcoming.lines if line.quantity]

    sign_in(page, site, owner)
    page.goto(f"{site}/usage/")

    panel = page.get_by_test_id("invoice")
    rows = panel.get_by_test_id("invoice-line")
    expect(rows).to_have_count(3)
    assert [row.locator("td").first.inner_text() for row in rows.all()] == stripe_lines
    expect(rows.nth(0)).to_contain_text(
        "Nano Banana 2 Lite: image output, 28,000 tokens × $0.00003 = $0.84"
    )
    expect(rows.nth(1)).to_contain_text(
        "Nano Banana 2 Lite: input, 29,000 tokens × $0.00000025 = $0.01"
    )
    expect(rows.nth(2)).to_contain_text("Markup, 25 images × $0.005 = $0.13")
    expect(panel.locator("tfoot")).to_contain_text("$0.98")
    expect(page.get_by_test_id("invoice-total")).to_have_text("$0.98")
    assert upcoming.total_cents == 98
    screenshot(page, "usage-invoice-tokens-1366")
