"""The Stripe side of token meters, set up idempotently (see `billing.tokens`).

`token_catalog_ensure` (run by `billing_setup`) makes a meter, product and metered price
for every line × kind of token at the price book's current rates, and a markup meter
for every plan's markup. A rate that appears later (a price-book change mid-period) gets
its meter and price on first use by the meter sync (`token_meter_ensure`), and the
tenant's subscription gains that price, keeping the old one until the period ends:
the usage priced at the old rate stays on the old price's line of the invoice.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import MeterLine, MeterSwitch, Price, TokenMeter, UsageEvent
from billing.pricing import price_for
from billing.stripe_gateway import StripeGateway
from billing.tokens import INVOICE_ORDER, MeterKey, markup_key, token_key
from core.catalog import MODELS, Mode
from tenants.models import Plan, Tenant

# With no usage from before token meters, the switch-over is a moment before any usage.
NO_LEGACY_SWITCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LEGACY_WINDOW = dt.timedelta(days=35)  # Stripe takes no meter event older than this


def token_meter_ensure(*, key: MeterKey, gateway: StripeGateway) -> TokenMeter:
    """The meter, product and price of `key`, created in Stripe if missing, recorded."""
    known = TokenMeter.objects.filter(event_name=key.event_name).first()
    if known is not None:
        return known
    meter_id = gateway.ensure_meter(event_name=key.event_name, display_name=key.meter_display_name)
    product_id = gateway.ensure_product(
        name=key.product_name, lookup=key.product_id, unit_label=key.unit_label
    )
    price_id = gateway.ensure_metered_price(
        product_id=product_id,
        meter_id=meter_id,
        unit_amount_decimal=key.unit_cents,
        lookup_key=key.event_name,
    )
    values = {
        "kind": key.kind,
        "tier": key.tier,
        "mode": key.mode,
        "unit_cents": key.unit_cents,
        "meter_id": meter_id,
        "product_id": product_id,
        "price_id": price_id,
    }
    try:
        with transaction.atomic():
            meter, _ = TokenMeter.objects.get_or_create(event_name=key.event_name, defaults=values)
    except IntegrityError:  # another worker recorded it first: the same Stripe objects
        meter = TokenMeter.objects.get(event_name=key.event_name)
    return meter


def current_token_keys() -> list[MeterKey]:
    """Every line × kind of token at the price book's rates now."""
    keys = []
    for tier, spec in MODELS.items():
        for mode in Mode.values:
            price = price_for(model=spec.model_id, mode=mode)
            keys += [token_key(kind, tier, mode, _rate(price, kind)) for kind in INVOICE_ORDER]
    return keys


def _rate(price: Price, kind: str) -> Decimal:
    return Decimal(getattr(price, f"{kind}_per_million"))


def plan_markup_key(plan: Plan) -> MeterKey:
    return markup_key(plan.markup_per_image)


def token_catalog_ensure(*, gateway: StripeGateway) -> list[TokenMeter]:
    keys = current_token_keys() + [plan_markup_key(plan) for plan in Plan.objects.all()]
    unique = list(dict.fromkeys(keys))
    return [token_meter_ensure(key=key, gateway=gateway) for key in unique]


def current_price_ids(*, plan: Plan, gateway: StripeGateway) -> list[str]:
    """The metered prices a subscription on `plan` holds now: every token price at the
    current rates and the plan's markup."""
    keys = [*current_token_keys(), plan_markup_key(plan)]
    return [token_meter_ensure(key=key, gateway=gateway).price_id for key in keys]


# -- the switch-over ----------------------------------------------------------------------


def switch_ensure(*, now: dt.datetime | None = None) -> MeterSwitch:
    """Record, once, from when usage goes to token meters.

    A database that has legacy meters (`MeterLine`) or usage stored before the rates were
    recorded switches now; everything before stays on the legacy meters. A fresh one
    switches at a moment before any usage. The row never moves afterwards.
    """
    existing = MeterSwitch.objects.order_by("pk").first()
    if existing is not None:
        return existing
    legacy = (
        MeterLine.objects.exists()
        or UsageEvent.objects.filter(input_per_million__isnull=True).exists()
    )
    moment = (now or timezone.now()) if legacy else NO_LEGACY_SWITCH
    with transaction.atomic():
        switch, _ = MeterSwitch.objects.select_for_update().get_or_create(
            pk=1, defaults={"token_meters_from": moment}
        )
    return switch


def tenant_needs_legacy_prices(tenant: Tenant, switch: dt.datetime | None) -> bool:
    """A new subscription holds the legacy prices only for usage still to be billed on them."""
    if switch is None or not MeterLine.objects.exists():
        return False
    return UsageEvent.objects.filter(
        tenant=tenant, occurred_at__lt=switch, occurred_at__gte=switch - LEGACY_WINDOW
    ).exists()
