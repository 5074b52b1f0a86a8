"""Tenant-scoped reads of the usage ledger, and the current invoice estimate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, QuerySet

from billing.rollups import RATE_KEYS, TOKEN_FIELDS, UNRATED, usage_totals
from billing.stripe_gateway import InvoicePreview, StripeGateway, StripeGatewayError
from billing.tokens import TokenLine, lines_from_groups, plain, switch_time
from core.catalog import MODELS
from core.money import show_cents, to_cents
from tenants.models import Tenant
from tenants.services import period_end, period_start

from .models import MeterLine, UsageEvent

GROUPS = ("day", "model", "mode", "served_model", "line")
# The model that served (and bills) the image: after a fallback, not the one asked for.
MONEY_SUM = DecimalField(max_digits=24, decimal_places=9)


def usage_for_tenant(tenant: Tenant) -> QuerySet[UsageEvent]:
    return UsageEvent.objects.filter(tenant=tenant)


def usage_in(tenant: Tenant, *, start: dt.datetime, end: dt.datetime) -> QuerySet[UsageEvent]:
    """The tenant's usage events in [start, end)."""
    return usage_for_tenant(tenant).filter(occurred_at__gte=start, occurred_at__lt=end)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    tokens = {field.removesuffix("_tokens"): row.pop(field) or 0 for field in TOKEN_FIELDS}
    return {**row, "tokens": tokens}


def usage_summary(
    tenant: Tenant, *, start: dt.datetime, end: dt.datetime, group_by: str
) -> dict[str, Any]:
    """Images, tokens by modality and money in [start, end), grouped by day, model, mode or
    the model that served the images (`served_model`: after a fallback, not the one asked for),
    and the images a fallback served, per day.

    From the daily rollups plus the ledger rows not yet folded (billing.rollups): exact,
    and one statement for both. `line` groups by invoice line instead (`usage_by_line`).
    """
    if group_by == "line":
        return usage_by_line(tenant, start=start, end=end)
    key = "tier" if group_by == "served_model" else group_by
    rows = usage_totals(tenant, start=start, end=end, keys=[*FALLBACK_KEYS, key])
    total: dict[str, Any] = {"images": 0, **dict.fromkeys(TOKEN_FIELDS, 0)}
    total.update(provider_cost=Decimal(0), billed=Decimal(0))
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(row[key], {"key": row[key], **dict.fromkeys(total, 0)})
        for name in total:
            total[name] += row[name]
            group[name] += row[name]
    return {
        "groups": [_clean(groups[k]) for k in sorted(groups)],
        "total": _clean(total),
        "fallbacks": _fallbacks(rows),
    }


# The rollup keys that say which images a fallback served, per day.
FALLBACK_KEYS = ("day", "requested_tier", "tier", "fallback_reason")


def fallbacks_by_day(
    tenant: Tenant, *, start: dt.datetime, end: dt.datetime
) -> list[dict[str, Any]]:
    """Images served by another model than the one asked for, per UTC day, requested and
    served model and reason (recorded on each image when it is stored); from the rollups."""
    return _fallbacks(usage_totals(tenant, start=start, end=end, keys=FALLBACK_KEYS))


def _fallbacks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        if not row["fallback_reason"]:
            continue
        key = (row["day"], row["requested_tier"], row["tier"], row["fallback_reason"])
        line = out.setdefault(
            key,
            dict(
                zip(("day", "requested_model", "served_model", "reason"), key, strict=True),
                images=0,
                billed=Decimal(0),
            ),
        )
        line["images"] += row["images"]
        line["billed"] += row["billed"]
    return [out[k] for k in sorted(out)]


# -- invoice lines --------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLineEstimate:
    """One line of the invoice from the ledger: a token or markup line (`kind`, `quantity`
    at `unit_cents`), or, for usage from before the switch-over to token meters, a legacy
    line of a tier × mode (`kind` "legacy", the images' exact amounts)."""

    line: str
    tier: str
    mode: str
    images: int
    billed: Decimal  # exact USD: quantity × unit price, or the legacy images' amounts
    kind: str = "legacy"
    quantity: int = 0
    unit_cents: Decimal | None = None
    unit: str = "images"
    description: str = ""
    tokens: dict[str, int] | None = None

    @property
    def amount_cents(self) -> int:
        """The exact amount rounded half-up to the cent once per line (what Stripe does)."""
        return int(to_cents(self.billed) * 100)

    @property
    def unit_price(self) -> Decimal | None:
        return self.unit_cents / 100 if self.unit_cents is not None else None


def _token_line(line: TokenLine) -> InvoiceLineEstimate:
    key = line.key
    return InvoiceLineEstimate(
        line=f"{key.tier}_{key.mode}" if key.tier else "markup",
        tier=key.tier,
        mode=key.mode,
        images=line.images,
        billed=line.exact_usd,
        kind=key.kind,
        quantity=line.quantity,
        unit_cents=key.unit_cents,
        unit=key.unit_label,
        description=line.description,
        tokens=line.tokens,
    )


def _legacy_line(row: dict[str, Any]) -> InvoiceLineEstimate:
    billed, batch = row["billed"], " (batch)" if row["mode"] == "batch" else ""
    name = MODELS[row["tier"]].display_name if row["tier"] in MODELS else row["tier"]
    return InvoiceLineEstimate(
        line=f"{row['tier']}_{row['mode']}",
        tier=row["tier"],
        mode=row["mode"],
        images=row["images"],
        billed=billed,
        quantity=row["images"],
        description=f"{name}{batch}: images before token billing, {row['images']:,} images "
        f"= {show_cents(int(to_cents(billed) * 100))}",
    )


def invoice_lines(
    tenant: Tenant, *, start: dt.datetime, end: dt.datetime
) -> list[InvoiceLineEstimate]:
    """The invoice's usage lines for [start, end), as Stripe bills them: token lines for
    usage from the switch-over on (one per meter: line, kind of token and rate, and the
    markup), legacy lines for usage before it. Both from the rollups (keyed by the rates
    and markup too) plus the ledger's tail (`usage_totals`), never a month of usage rows."""
    switch = switch_time()
    if switch is None:  # before billing_setup: legacy only if the legacy meters exist
        switch = dt.datetime.max.replace(tzinfo=dt.UTC) if MeterLine.objects.exists() else start
    cut = min(max(switch, start), end)
    legacy = []
    if start < cut:
        rows = usage_totals(tenant, start=start, end=cut, keys=["tier", "mode"])
        legacy = [_legacy_line(row) for row in rows]
    if cut >= end:
        return legacy
    return legacy + [_token_line(line) for line in token_lines_in(tenant, start=cut, end=end)]


def token_lines_in(tenant: Tenant, *, start: dt.datetime, end: dt.datetime) -> list[TokenLine]:
    """The token and markup lines of the tenant's usage in [start, end), per line and
    rates: what `billing.tokens.token_lines` gives for the same ledger rows, read from the
    rollups. Usage without recorded rates (before token billing) has no token line."""
    rows = usage_totals(tenant, start=start, end=end, keys=["tier", "mode", *RATE_KEYS, "markup"])
    return lines_from_groups(
        {**row, **{f"sum_{field}": row[field] for field in TOKEN_FIELDS}}
        for row in rows
        if row["input_per_million"] != UNRATED
    )


def usage_by_line(tenant: Tenant, *, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """`usage_summary` by invoice line: each group is a line of the invoice
    (`invoice_lines`), with its description, quantity, unit price and amount."""
    groups = []
    for line in invoice_lines(tenant, start=start, end=end):
        tokens = {name.removesuffix("_tokens"): 0 for name in TOKEN_FIELDS}
        tokens.update(line.tokens or {})
        key = f"{line.line}.{line.kind}" + (
            f"@{plain(line.unit_price)}" if line.unit_price is not None else ""
        )
        provider = Decimal(0) if line.kind in ("markup", "legacy") else line.billed
        groups.append(
            {
                "key": key,
                "images": line.images,
                "tokens": tokens,
                "provider_cost": provider,
                "billed": line.billed,
                "line": line,
            }
        )
    rows = usage_totals(tenant, start=start, end=end, keys=["mode"])
    total: dict[str, Any] = {"images": 0, **dict.fromkeys(TOKEN_FIELDS, 0)}
    total.update(provider_cost=Decimal(0), billed=Decimal(0))
    for row in rows:
        for name in total:
            total[name] += row[name]
    return {
        "groups": groups,
        "total": _clean(total),
        "fallbacks": fallbacks_by_day(tenant, start=start, end=end),
    }


# -- the current invoice --------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceAdjustment:
    """A line Stripe adds that the ledger does not hold: a plan change's proration."""

    description: str
    amount_cents: int


@dataclass(frozen=True)
class InvoiceEstimate:
    period_start: dt.datetime
    period_end: dt.datetime
    plan_name: str
    plan_fee_cents: int
    adjustments: list[InvoiceAdjustment]
    lines: list[InvoiceLineEstimate]
    not_yet_reported: int
    stripe_total_cents: int | None

    @property
    def usage_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def total_cents(self) -> int:
        """What Stripe's next invoice will say: the plan's fee (billed through Stripe as a
        licensed price), Stripe's prorations, and each usage line rounded once."""
        adjusted = sum(a.amount_cents for a in self.adjustments)
        return self.plan_fee_cents + adjusted + self.usage_cents


def invoice_estimate(
    tenant: Tenant, *, gateway: StripeGateway, now: dt.datetime
) -> InvoiceEstimate:
    """The invoice so far: the plan's fee and the ledger's usage lines, plus the
    prorations and the total of Stripe's own preview when Stripe is reachable."""
    start, end, preview = _stripe_period(tenant, gateway=gateway)
    if start is None or end is None:
        first = period_start(now)
        start = dt.datetime.combine(first, dt.time(), dt.UTC)
        end = dt.datetime.combine(period_end(first), dt.time(), dt.UTC)
    lines = invoice_lines(tenant, start=start, end=end)
    # Only rows not yet sent: the Stripe state index finds them without reading the month.
    unsent = [UsageEvent.StripeState.PENDING, UsageEvent.StripeState.FAILED]
    unreported = usage_in(tenant, start=start, end=end).filter(stripe_state__in=unsent).count()
    adjustments = [
        InvoiceAdjustment(description=line.description, amount_cents=line.amount_cents)
        for line in (preview.lines if preview else ())
        if line.proration
    ]
    return InvoiceEstimate(
        period_start=start,
        period_end=end,
        plan_name=tenant.plan.name,
        plan_fee_cents=max(int(to_cents(tenant.plan.monthly_price) * 100), 0),
        adjustments=adjustments,
        lines=lines,
        not_yet_reported=unreported,
        stripe_total_cents=preview.total_cents if preview else None,
    )


def _stripe_period(
    tenant: Tenant, *, gateway: StripeGateway
) -> tuple[dt.datetime | None, dt.datetime | None, InvoicePreview | None]:
    if not (tenant.stripe_customer_id and tenant.stripe_subscription_id):
        return None, None, None
    try:
        subscription = gateway.retrieve_subscription(subscription_id=tenant.stripe_subscription_id)
        preview = gateway.invoice_preview(customer_id=tenant.stripe_customer_id)
    except StripeGatewayError:
        return None, None, None
    item = subscription.items[0] if subscription.items else None
    if item is None or item.current_period_start is None or item.current_period_end is None:
        return None, None, preview
    return (
        dt.datetime.fromtimestamp(item.current_period_start, dt.UTC),
        dt.datetime.fromtimestamp(item.current_period_end, dt.UTC),
        preview,
    )
