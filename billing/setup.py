"""The Stripe side of billing, set up idempotently: meters, products, prices, subscriptions.

Usage is metered in tokens (`billing.tokens`, `billing.token_setup`): per line (tier ×
mode) input, text output and image output tokens, priced in cents per token, and the
plan's markup per image. Usage from before the switch-over (`MeterSwitch`) stays on the
legacy meters, two per line, each summing `value`:

- ``bunch_images_<line>``: 1 per image, priced at 0 — the invoice shows the image count;
- ``bunch_amount_<line>``: the image's billed amount in cents, priced at 1 cent per unit.

The plan's monthly fee is a licensed price (``bunch_plan_<slug>``, the plan's
`monthly_price` × quantity 1) on the same subscription, so Stripe's invoice holds the fee
and the usage, and a plan change swaps the fee's price with proration (`plan_change`).

Every call here can be repeated: Stripe objects are found by event name, product id or price
lookup key before anything is created, and tenant objects use deterministic
Idempotency-Keys, so two runs (or a run and a sync worker) converge on the same objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from billing.models import MeterLine
from billing.services import tenant_stripe_ids_set
from billing.stripe_gateway import (
    StripeGateway,
    StripeGatewayError,
    Subscription,
    SubscriptionItem,
)
from billing.token_setup import (
    current_price_ids,
    plan_markup_key,
    switch_ensure,
    tenant_needs_legacy_prices,
    token_catalog_ensure,
    token_meter_ensure,
)
from billing.tokens import switch_time
from config.errors import BunchError
from core.catalog import MODELS, Mode
from core.money import to_cents
from tenants.models import Membership, Plan, Tenant
from tenants.services import tenant_set_plan

IMAGES = "images"
AMOUNT = "amount"
IMAGES_UNIT_CENTS = Decimal(0)
AMOUNT_UNIT_CENTS = Decimal(1)
CHECKOUT_REFERENCE_PREFIX = "bunch:"
PLAN_LOOKUP_PREFIX = "bunch_plan_"


@dataclass
class SetupReport:
    lines: list[str] = field(default_factory=list)
    customers_created: int = 0
    subscriptions_created: int = 0
    prices_added: int = 0
    problems: list[str] = field(default_factory=list)


def billable_lines() -> list[tuple[str, str]]:
    """Every (tier, mode) that can produce a usage event."""
    return [(tier, mode) for tier in MODELS for mode in Mode.values]


def event_name(kind: str, line: str) -> str:
    return f"bunch_{kind}_{line}"


def lines_ensure(*, gateway: StripeGateway) -> list[MeterLine]:
    """Legacy: the image and amount meters of every line (what `billing_setup` made before
    token meters); their ids recorded in MeterLine."""
    return [_line_ensure(gateway=gateway, tier=t, mode=m) for t, m in billable_lines()]


def _line_ensure(*, gateway: StripeGateway, tier: str, mode: str) -> MeterLine:
    line = f"{tier}_{mode}"
    label = f"{MODELS[tier].display_name}, {mode}"
    ids: dict[str, str] = {}
    for kind, unit, title in (
        (IMAGES, IMAGES_UNIT_CENTS, f"Images — {label}"),
        (AMOUNT, AMOUNT_UNIT_CENTS, f"Image usage — {label} (USD cents)"),
    ):
        name = event_name(kind, line)
        meter_id = gateway.ensure_meter(event_name=name, display_name=title)
        product_id = gateway.ensure_product(name=title, lookup=name)
        ids[f"{kind}_event_name"] = name
        ids[f"{kind}_meter_id"] = meter_id
        ids[f"{kind}_product_id"] = product_id
        ids[f"{kind}_price_id"] = gateway.ensure_metered_price(
            product_id=product_id, meter_id=meter_id, unit_amount_decimal=unit, lookup_key=name
        )
    meter_line, _ = MeterLine.objects.update_or_create(
        line=line, defaults={"tier": tier, "mode": mode, "updated_at": timezone.now(), **ids}
    )
    return meter_line


def plan_fee_cents(plan: Plan) -> int:
    return int(to_cents(plan.monthly_price) * 100)


def plan_price_ensure(*, plan: Plan, gateway: StripeGateway) -> str | None:
    """The licensed monthly price of `plan`'s fee; None for a plan without one."""
    cents = plan_fee_cents(plan)
    if cents <= 0:
        return None
    lookup = f"{PLAN_LOOKUP_PREFIX}{plan.slug}"
    product_id = gateway.ensure_product(name=f"{plan.name} plan — monthly fee", lookup=lookup)
    return gateway.ensure_licensed_price(
        product_id=product_id, unit_amount_cents=cents, lookup_key=lookup
    )


def _fee_item(subscription: Subscription) -> SubscriptionItem | None:
    return next(
        (i for i in subscription.items if (i.lookup_key or "").startswith(PLAN_LOOKUP_PREFIX)),
        None,
    )


def plan_fee_ensure(
    *, tenant: Tenant, gateway: StripeGateway, plan: Plan | None = None, prorate: bool = False
) -> Subscription | None:
    """The tenant's subscription bills `plan`'s fee (the tenant's plan by default): the
    fee's item swapped to that plan's price, or added; removed for a plan without a fee.

    `prorate` is for a change in the middle of a period (an upgrade: the difference is on
    the next invoice); a catch-up of an older subscription starts with the next period.
    """
    plan = plan or tenant.plan
    if not tenant.stripe_subscription_id:
        return None
    subscription = gateway.retrieve_subscription(subscription_id=tenant.stripe_subscription_id)
    item = _fee_item(subscription)
    price_id = plan_price_ensure(plan=plan, gateway=gateway)
    if (item.price_id if item else None) == price_id:
        return subscription
    return gateway.set_subscription_fee(
        subscription_id=subscription.id,
        item_id=item.id if item else None,
        price_id=price_id,
        prorate=prorate,
        idempotency_key=f"bunch-plan-fee:{subscription.id}:{item.id if item else ''}:{price_id}",
    )


def plan_change(*, tenant: Tenant, plan: Plan, gateway: StripeGateway) -> None:
    """Switch a subscribed tenant to `plan` at once: Stripe swaps the fee with proration,
    the subscription gains the plan's markup price (the old one stays for the images
    billed at the old markup), then the plan applies (its quota, models, rates)."""
    plan_fee_ensure(tenant=tenant, gateway=gateway, plan=plan, prorate=True)
    markup = token_meter_ensure(key=plan_markup_key(plan), gateway=gateway)
    subscription_prices_ensure(tenant=tenant, gateway=gateway, price_ids=[markup.price_id])
    tenant_set_plan(tenant=tenant, plan=plan)


def legacy_price_ids() -> list[str]:
    return [price for line in MeterLine.objects.order_by("line") for price in line.price_ids]


def subscription_price_ids(*, tenant: Tenant, plan: Plan, gateway: StripeGateway) -> list[str]:
    """The metered prices a new subscription holds: the token prices at today's rates,
    the plan's markup, and the legacy prices if usage from before the switch-over is
    still to be billed on them."""
    legacy = legacy_price_ids() if tenant_needs_legacy_prices(tenant, switch_time()) else []
    return [*current_price_ids(plan=plan, gateway=gateway), *legacy]


def subscription_prices_ensure(
    *, tenant: Tenant, gateway: StripeGateway, price_ids: list[str] | None = None
) -> list[str]:
    """Add to the tenant's subscription the metered prices it lacks (by default those of
    today's rates and its plan's markup); nothing is removed, so usage billed at an older
    price stays on that price's line until the period ends. The prices added."""
    if not tenant.stripe_subscription_id:
        return []
    wanted = (
        price_ids if price_ids is not None else current_price_ids(plan=tenant.plan, gateway=gateway)
    )
    subscription = gateway.retrieve_subscription(subscription_id=tenant.stripe_subscription_id)
    held = {item.price_id for item in subscription.items}
    missing = [p for p in dict.fromkeys(wanted) if p not in held]
    if missing:
        digest = hashlib.sha256(",".join(missing).encode()).hexdigest()[:16]
        gateway.add_subscription_prices(
            subscription_id=subscription.id,
            price_ids=missing,
            idempotency_key=f"bunch-subscription-prices:{subscription.id}:{digest}",
        )
    return missing


def tenant_customer_ensure(*, tenant: Tenant, gateway: StripeGateway) -> str:
    """The tenant's Stripe customer id, creating the customer on first use."""
    if not tenant.stripe_customer_id:
        tenant.refresh_from_db(fields=["stripe_customer_id"])
    if tenant.stripe_customer_id:
        return tenant.stripe_customer_id
    # The key names this tenant row (pk and creation instant), so concurrent or repeated
    # calls get the same customer back, and a reused pk (a recreated database) does not.
    created_us = int(tenant.created_at.timestamp() * 1_000_000)
    customer_id = gateway.create_customer(
        name=tenant.name,
        email=_billing_email(tenant),
        metadata={"tenant_id": str(tenant.pk), "tenant_slug": tenant.slug},
        idempotency_key=f"bunch-customer:{tenant.pk}:{created_us}",
    )
    tenant_stripe_ids_set(tenant=tenant, customer_id=customer_id)
    return tenant.stripe_customer_id


def tenant_subscription_ensure(*, tenant: Tenant, gateway: StripeGateway) -> str | None:
    """The tenant's subscription to every line's prices; None until `billing_setup` ran."""
    if tenant.stripe_subscription_id:
        return tenant.stripe_subscription_id
    if switch_time() is None:
        return None
    price_ids = subscription_price_ids(tenant=tenant, plan=tenant.plan, gateway=gateway)
    customer_id = tenant_customer_ensure(tenant=tenant, gateway=gateway)
    fee_price_id = plan_price_ensure(plan=tenant.plan, gateway=gateway)
    digest = hashlib.sha256(",".join([fee_price_id or "", *price_ids]).encode()).hexdigest()[:16]
    subscription = gateway.create_subscription(
        customer_id=customer_id,
        price_ids=price_ids,
        fee_price_id=fee_price_id,
        idempotency_key=f"bunch-subscription:{customer_id}:{digest}",
    )
    tenant_stripe_ids_set(tenant=tenant, subscription_id=subscription.id)
    return subscription.id


def setup_run(*, gateway: StripeGateway, tenants: bool = True) -> SetupReport:
    """`billing_setup`: the catalog, then a customer and a subscription per live tenant."""
    report = SetupReport()
    if not settings.BILLING_ENABLED:
        report.problems.append("billing is disabled (BUNCH_BILLING_ENABLED=false)")
        return report
    report.lines = [meter.event_name for meter in token_catalog_ensure(gateway=gateway)]
    switch_ensure()
    if not tenants:
        return report
    for tenant in Tenant.objects.exclude(status=Tenant.Status.CANCELED).order_by("pk"):
        had_customer, had_subscription = (
            bool(tenant.stripe_customer_id),
            bool(tenant.stripe_subscription_id),
        )
        try:
            if had_subscription:
                plan_fee_ensure(tenant=tenant, gateway=gateway)
                report.prices_added += len(
                    subscription_prices_ensure(tenant=tenant, gateway=gateway)
                )
            tenant_subscription_ensure(tenant=tenant, gateway=gateway)
        except StripeGatewayError as exc:
            report.problems.append(f"{tenant.slug}: {exc}")
        report.customers_created += int(not had_customer and bool(tenant.stripe_customer_id))
        report.subscriptions_created += int(
            not had_subscription and bool(tenant.stripe_subscription_id)
        )
    return report


def _billing_email(tenant: Tenant) -> str:
    owner = (
        Membership.objects.filter(tenant=tenant, role=Membership.Role.OWNER)
        .select_related("user")
        .order_by("created_at")
        .first()
    )
    return owner.user.email if owner else ""


# -- hosted pages ---------------------------------------------------------------------------


class BillingUnavailable(BunchError):
    status = 503
    code = "billing_unavailable"


def _hosted(call: Callable[[], str]) -> str:
    try:
        return call()
    except StripeGatewayError as exc:
        retry = "Try again in a minute." if exc.retryable else "Contact support."
        raise BillingUnavailable(f"The payment provider refused the request. {retry}") from exc


def checkout_session_create(
    *, tenant: Tenant, plan: Plan, success_url: str, cancel_url: str, gateway: StripeGateway
) -> str:
    """A Stripe Checkout page subscribing the tenant to ``plan``'s fee and every line.

    The plan travels in `client_reference_id` and comes back with
    `checkout.session.completed`, which switches the tenant's plan (see `billing.webhooks`).
    """

    def create() -> str:
        switch_ensure()
        return gateway.create_checkout_session(
            customer_id=tenant_customer_ensure(tenant=tenant, gateway=gateway),
            price_ids=subscription_price_ids(tenant=tenant, plan=plan, gateway=gateway),
            success_url=success_url,
            cancel_url=cancel_url,
            client_reference_id=checkout_reference(tenant=tenant, plan=plan),
            fee_price_id=plan_price_ensure(plan=plan, gateway=gateway),
        )

    return _hosted(create)


def plan_change_hosted(*, tenant: Tenant, plan: Plan, gateway: StripeGateway) -> None:
    """`plan_change`, a Stripe refusal answered as `BillingUnavailable` (503)."""

    def change() -> str:
        plan_change(tenant=tenant, plan=plan, gateway=gateway)
        return ""

    _hosted(change)


def portal_session_create(*, tenant: Tenant, return_url: str, gateway: StripeGateway) -> str:
    """Stripe's customer portal: payment methods, invoices, cancellation."""
    return _hosted(
        lambda: gateway.create_portal_session(
            customer_id=tenant_customer_ensure(tenant=tenant, gateway=gateway),
            return_url=return_url,
        )
    )


def checkout_reference(*, tenant: Tenant, plan: Plan) -> str:
    """The Checkout `client_reference_id` that carries the chosen plan back to us."""
    return f"{CHECKOUT_REFERENCE_PREFIX}{tenant.pk}:{plan.slug}"


def checkout_reference_plan(reference: str, *, tenant: Tenant) -> str | None:
    tenant_id, _, slug = reference.removeprefix(CHECKOUT_REFERENCE_PREFIX).partition(":")
    if not reference.startswith(CHECKOUT_REFERENCE_PREFIX) or tenant_id != str(tenant.pk):
        return None
    return slug or None
