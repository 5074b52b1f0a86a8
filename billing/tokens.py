"""Invoices in tokens: which Stripe meter each part of an image's bill goes to, and the
invoice lines the ledger adds up to. No Stripe calls here (see `billing.token_setup`).

Per line (tier × mode), an image's tokens go to three meters, each summing tokens:
input (text + images), text output (text + thoughts) and image output. Each is priced
with `unit_amount_decimal` = the price book's rate in **cents per token** ($30 per 1M =
0.003 ¢), so an invoice line reads like Google's bill. The plan's markup is a fourth
meter, one per image, priced at the markup.

A meter bills its whole usage at every price attached to it, and Stripe prices are
immutable, so a meter has exactly one price: a key (`MeterKey`) names the kind, the line
and the rate, and a new rate (a price-book change, a plan with another markup) is a new
meter. Each usage event records the rates it was priced at, so its tokens always reach
the meter of the price it was billed at, and a line's total is tokens × unit price,
rounded half-up to the cent once, on Stripe's invoice and in the ledger alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum

from billing.models import MeterSwitch, TokenMeter, UsageEvent
from core.catalog import MODELS
from core.money import show_cents

Kind = TokenMeter.Kind
TOKEN_KINDS = (Kind.INPUT, Kind.TEXT_OUTPUT, Kind.IMAGE_OUTPUT)
INVOICE_ORDER = (Kind.IMAGE_OUTPUT, Kind.INPUT, Kind.TEXT_OUTPUT)  # as Google's bill lists them
TOKENS_PER_MILLION_CENTS = Decimal(10_000)  # USD per 1M tokens → cents per token
CENTS_PER_USD = Decimal(100)
MARKUP_PRODUCT = "bunch_markup"
MAX_UNIT_DECIMALS = 12  # Stripe's limit for unit_amount_decimal


def _code(amount: Decimal) -> str:
    return format(amount.normalize(), "f").replace(".", "p")


def plain(amount: Decimal) -> str:
    """A decimal without exponent or trailing zeros: `0.003`, `15`, `0`."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"


@dataclass(frozen=True)
class MeterKey:
    """What one token meter measures: `kind` of line `tier`_`mode` at `rate` (USD per 1M
    tokens), or the markup (`tier` and `mode` empty) at `rate` USD per image."""

    kind: str
    tier: str
    mode: str
    rate: Decimal

    @property
    def is_markup(self) -> bool:
        return self.kind == Kind.MARKUP

    @property
    def unit_cents(self) -> Decimal:
        """The price's `unit_amount_decimal`: cents per token, or per image."""
        if self.is_markup:
            return (self.rate * CENTS_PER_USD).normalize()
        return (self.rate / TOKENS_PER_MILLION_CENTS).normalize()

    @property
    def event_name(self) -> str:
        if self.is_markup:
            return f"bunch_markup_at_{_code(self.rate)}_usd"
        return f"bunch_tokens_{self.tier}_{self.mode}_{self.kind}_at_{_code(self.rate)}_per_m"

    @property
    def product_id(self) -> str:
        """One product per line and kind (or the markup's): its prices differ by rate."""
        return (
            MARKUP_PRODUCT
            if self.is_markup
            else f"bunch_tokens_{self.tier}_{self.mode}_{self.kind}"
        )

    @property
    def product_name(self) -> str:
        if self.is_markup:
            return "Markup"
        model = MODELS[self.tier].display_name
        batch = " (batch)" if self.mode == "batch" else ""
        return f"{model}{batch}: {Kind(self.kind).label}"

    @property
    def unit_label(self) -> str:
        return "images" if self.is_markup else "tokens"

    @property
    def meter_display_name(self) -> str:
        unit = "image" if self.is_markup else "token"
        return f"{self.product_name} (${plain(self.unit_cents / CENTS_PER_USD)} per {unit})"

    @staticmethod
    def of(meter: TokenMeter) -> MeterKey:
        rate = meter.unit_cents / CENTS_PER_USD
        if meter.kind != Kind.MARKUP:
            rate = meter.unit_cents * TOKENS_PER_MILLION_CENTS
        return MeterKey(kind=meter.kind, tier=meter.tier, mode=meter.mode, rate=rate.normalize())


def token_key(kind: str, tier: str, mode: str, rate: Decimal) -> MeterKey:
    return MeterKey(kind=kind, tier=tier, mode=mode, rate=Decimal(rate).normalize())


def markup_key(markup: Decimal) -> MeterKey:
    return MeterKey(kind=Kind.MARKUP, tier="", mode="", rate=Decimal(markup).normalize())


def line_amount_cents(quantity: int | Decimal, unit_cents: Decimal) -> int:
    """Quantity × unit price, rounded half-up to the cent once: Stripe's rule, and ours."""
    return int((Decimal(quantity) * unit_cents).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line_description(
    *, product_name: str, quantity: int, unit_label: str, unit_cents: Decimal, amount_cents: int
) -> str:
    """`Nano Banana 2 Lite: image output, 1,120,000 tokens × $0.00003 = $33.60` — the
    text of the invoice line (the Stripe emulator writes the same)."""
    unit_usd = plain(unit_cents / CENTS_PER_USD)
    return f"{product_name}, {quantity:,} {unit_label} × ${unit_usd} = {show_cents(amount_cents)}"


# -- one usage event ----------------------------------------------------------------------


class RatesMissing(ValueError):
    """A usage event without the rates it was priced at (stored before token meters)."""


def event_quantities(event: UsageEvent) -> list[tuple[MeterKey, int]]:
    """The token meters one usage event reports to and the value for each. Kinds with no
    tokens are left out; the markup meter always counts the image."""
    rates = (event.input_per_million, event.text_output_per_million, event.image_output_per_million)
    if any(rate is None for rate in rates):
        raise RatesMissing(f"usage {event.pk} has no recorded rates")
    tokens = (
        event.input_text_tokens + event.input_image_tokens,
        event.output_text_tokens + event.thoughts_tokens,
        event.output_image_tokens,
    )
    found = [
        (token_key(kind, event.tier, event.mode, rate), quantity)
        for kind, rate, quantity in zip(TOKEN_KINDS, rates, tokens, strict=True)
        if quantity > 0 and rate is not None
    ]
    return [*found, (markup_key(event.markup), 1)]


# -- the switch-over ----------------------------------------------------------------------


def switch_time() -> dt.datetime | None:
    """From when usage goes to token meters; None until `billing_setup` recorded it."""
    switch = MeterSwitch.objects.order_by("pk").first()
    return switch.token_meters_from if switch else None


def on_token_meters(event: UsageEvent, switch: dt.datetime) -> bool:
    """The one routing rule: an event goes to the token meters iff it occurred at or after
    the switch-over, so it is never on both."""
    return event.occurred_at >= switch


# -- the ledger's invoice lines -----------------------------------------------------------


@dataclass(frozen=True)
class TokenLine:
    """One token or markup line of an invoice, from the ledger: the tokens it bills (by
    modality: `input_text`, `input_image`, … as `usage_metadata` gives them) summed into
    `quantity`, and the images they came from."""

    key: MeterKey
    quantity: int
    images: int
    tokens: dict[str, int] = field(default_factory=dict)

    @property
    def amount_cents(self) -> int:
        return line_amount_cents(self.quantity, self.key.unit_cents)

    @property
    def exact_usd(self) -> Decimal:
        return Decimal(self.quantity) * self.key.unit_cents / CENTS_PER_USD

    @property
    def description(self) -> str:
        return line_description(
            product_name=self.key.product_name,
            quantity=self.quantity,
            unit_label=self.key.unit_label,
            unit_cents=self.key.unit_cents,
            amount_cents=self.amount_cents,
        )


RATE_FIELDS = ("input_per_million", "text_output_per_million", "image_output_per_million")
# The usage_metadata counts each kind of token meter sums.
KIND_TOKENS: dict[str, tuple[str, ...]] = {
    Kind.INPUT: ("input_text_tokens", "input_image_tokens"),
    Kind.TEXT_OUTPUT: ("output_text_tokens", "thoughts_tokens"),
    Kind.IMAGE_OUTPUT: ("output_image_tokens",),
}
TOKEN_COUNTS = tuple(f for fields in KIND_TOKENS.values() for f in fields)


def token_lines(events: QuerySet[UsageEvent]) -> list[TokenLine]:
    """The events' invoice lines: summed in the database per line and rates (integer token
    sums, exact on every backend), then per meter, in the invoice's order."""
    groups = (
        events.exclude(input_per_million__isnull=True)
        .order_by()
        .values("tier", "mode", *RATE_FIELDS, "markup")
        .annotate(images=Count("pk"), **{f"sum_{f}": Sum(f) for f in TOKEN_COUNTS})
    )
    return lines_from_groups(groups)


def lines_from_groups(groups: Iterable[dict[str, Any]]) -> list[TokenLine]:
    quantities: dict[MeterKey, dict[str, int]] = {}
    for group in groups:
        images = int(group["images"])
        rates = dict(zip(TOKEN_KINDS, (group[f] for f in RATE_FIELDS), strict=True))
        for kind in TOKEN_KINDS:
            counts = {f: int(group[f"sum_{f}"] or 0) for f in KIND_TOKENS[kind]}
            if not any(counts.values()):
                continue
            total = quantities.setdefault(
                token_key(kind, group["tier"], group["mode"], rates[kind]), {"images": 0}
            )
            total["images"] += images
            for name, count in counts.items():
                total[name] = total.get(name, 0) + count
        markup = quantities.setdefault(markup_key(group["markup"]), {"images": 0})
        markup["images"] += images
    lines = []
    for key, counts in quantities.items():
        images = counts.pop("images")
        tokens = {name.removesuffix("_tokens"): count for name, count in counts.items()}
        quantity = images if key.is_markup else sum(tokens.values())
        lines.append(TokenLine(key=key, quantity=quantity, images=images, tokens=tokens))
    return sorted(lines, key=_line_order)


def _line_order(line: TokenLine) -> tuple[Any, ...]:
    tiers = list(MODELS)
    kinds: list[str] = [*INVOICE_ORDER, Kind.MARKUP]
    tier = tiers.index(line.key.tier) if line.key.tier in tiers else len(tiers)
    return (line.key.is_markup, tier, line.key.mode, kinds.index(line.key.kind), line.key.rate)


def meter_of(key: MeterKey) -> TokenMeter | None:
    return TokenMeter.objects.filter(event_name=key.event_name).first()
