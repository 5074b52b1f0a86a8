"""The plan's monthly fee is billed through Stripe, and the estimate is Stripe's invoice.

Everything runs against the Stripe emulator: the dashboard's and the API's estimate are
compared with the emulator's own upcoming invoice (`invoices.create_preview`), in cents.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal

from django.test import Client

from billing.stripe_gateway import StripeGateway
from billing.sync import sync_pending
from core.catalog import TokenUsage
from tenants.models import Tenant
from tenants.services import tenant_set_plan
from tests.billing.conftest import record_usage
from tests.plugins.actors import Actor, make_plan
from tests.plugins.stripe import StripeEmulator

INVOICE = "/api/v1/billing/invoice"
CHECKOUT = "/api/v1/billing/checkout"


def _dashboard_total(actor: Actor) -> str:
    client = Client()
    client.force_login(actor.user)
    page = client.get("/usage/").content.decode()
    match = re.search(r'data-testid="invoice-total">([^<]+)<', page)
    assert match, page
    return match.group(1)


def _upcoming_cents(gateway: StripeGateway, tenant: Tenant) -> int:
    tenant.refresh_from_db()
    return gateway.invoice_preview(customer_id=tenant.stripe_customer_id).total_cents


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _post_without_redirect(url: str) -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=b"", method="POST"), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _on_plan(tenant: Tenant, slug: str, price: str) -> None:
    plan = make_plan(slug=slug, name=slug.title(), monthly_price=Decimal(price))
    tenant_set_plan(tenant=tenant, plan=plan)


def test_the_plan_fee_is_on_stripes_invoice_and_the_estimate_equals_it_to_the_cent(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    _on_plan(owner.tenant, "scale", "499.00")
    subscribed(owner.tenant)
    record_usage(owner.tenant, n=3)  # 3 × 4.3603 ¢ → 13 ¢
    record_usage(owner.tenant, tier="pro", usage=TokenUsage(output_image_tokens=2000))  # 25 ¢
    sync_pending()

    preview = gateway.invoice_preview(customer_id=owner.tenant.stripe_customer_id)
    body = owner.api().get(INVOICE).json()

    assert 49900 in [line.amount_cents for line in preview.lines]
    assert preview.total_cents == 49900 + 13 + 25
    assert body["plan"] == {"name": "Scale", "amount_cents": 49900}
    assert body["total_cents"] == body["stripe"]["total_cents"] == preview.total_cents
    assert _dashboard_total(owner) == "$499.38"


def test_an_upgrade_prorates_the_fee_and_the_estimate_still_equals_stripe(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    _on_plan(owner.tenant, "starter", "49.00")
    make_plan(slug="scale", name="Scale", monthly_price=Decimal("499.00"))
    subscribed(owner.tenant)
    record_usage(owner.tenant, n=2)
    sync_pending()

    response = owner.api().post(CHECKOUT, {"plan": "scale"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["url"].endswith("/usage/?plan=changed")
    owner.tenant.refresh_from_db()
    assert owner.tenant.plan.slug == "scale"
    preview = gateway.invoice_preview(customer_id=owner.tenant.stripe_customer_id)
    prorations = [line.amount_cents for line in preview.lines if line.proration]
    # Almost the whole period is left: about −$49 for the old fee, +$499 for the new one.
    assert len(prorations) == 2
    assert -4900 <= prorations[0] < -4800 and 49800 < prorations[1] <= 49900
    body = owner.api().get(INVOICE).json()
    assert [a["amount_cents"] for a in body["adjustments"]] == prorations
    assert body["total_cents"] == preview.total_cents == _upcoming_cents(gateway, owner.tenant)
    dollars = f"${preview.total_cents // 100:,}.{preview.total_cents % 100:02d}"
    assert _dashboard_total(owner) == dollars


def test_checkout_lists_the_plans_monthly_fee_with_the_metered_prices(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    make_plan(slug="scale", name="Scale", monthly_price=Decimal("499.00"))

    url = owner.api().post(CHECKOUT, {"plan": "scale"}, format="json").json()["url"]
    with urllib.request.urlopen(url, timeout=10) as response:
        page = response.read().decode()

    assert '<li data-kind="licensed">Scale plan — monthly fee: 499.00 USD per month</li>' in page
    assert page.count('data-kind="metered"') == 3 * 2 * 3 + 1  # tokens per line, the markup


def test_paying_at_checkout_subscribes_to_the_fee_and_every_line(
    owner: Actor, stripe_app: StripeEmulator, gateway: StripeGateway
) -> None:
    make_plan(slug="scale", name="Scale", monthly_price=Decimal("499.00"))
    url = owner.api().post(CHECKOUT, {"plan": "scale"}, format="json").json()["url"]
    session_id = url.rsplit("/", 1)[1]
    _post_without_redirect(f"{url}/pay")  # the success URL is the test server's
    session = next(s for s in stripe_app.state()["checkout_sessions"] if s["id"] == session_id)

    subscription = gateway.retrieve_subscription(subscription_id=session["subscription"])

    assert len(subscription.items) == 1 + 3 * 2 * 3 + 1  # fee, token prices, the markup
    assert subscription.items[0].lookup_key == "bunch_plan_scale"


def test_moving_to_a_plan_without_a_fee_credits_and_removes_the_fee(
    owner: Actor, gateway: StripeGateway, subscribed: Callable
) -> None:
    _on_plan(owner.tenant, "scale", "499.00")
    make_plan(slug="free", name="Free", monthly_price=Decimal("0"))
    subscribed(owner.tenant)

    response = owner.api().post(CHECKOUT, {"plan": "free"}, format="json")

    assert response.status_code == 200, response.content
    owner.tenant.refresh_from_db()
    subscription = gateway.retrieve_subscription(
        subscription_id=owner.tenant.stripe_subscription_id
    )
    assert not any((i.lookup_key or "").startswith("bunch_plan_") for i in subscription.items)
    preview = gateway.invoice_preview(customer_id=owner.tenant.stripe_customer_id)
    [credit] = [line.amount_cents for line in preview.lines if line.proration]
    assert -49900 <= credit < -49800
    assert owner.api().get(INVOICE).json()["total_cents"] == preview.total_cents
