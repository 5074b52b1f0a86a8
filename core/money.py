"""Money arithmetic. Plain Python, no Django.

Amounts are `Decimal` USD. Counters that must compare exactly inside SQL (quota spend)
hold integer nano-dollars (1e-9 USD): every price in the price book is a whole number of
nano-dollars per token, so token costs convert without rounding.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

NANOS_PER_USD = Decimal(1_000_000_000)
CENT = Decimal("0.01")
PER_MILLION = Decimal(1_000_000)


def to_nanos(amount: Decimal) -> int:
    """USD → nano-dollars, rounded up (a reservation never under-counts)."""
    return int((amount * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def token_cost(tokens: int, usd_per_million: Decimal) -> Decimal:
    return Decimal(tokens) * usd_per_million / PER_MILLION


def to_cents(amount: Decimal) -> Decimal:
    """The rounding rule for invoices and ledger totals: half up, to the cent."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


UNIT = Decimal("0.0001")


def unit_price(amount: Decimal) -> Decimal:
    """A per-image price as people see it: 4 decimals, rounded up, because it is shown as
    "up to" or "per image" and must never read lower than what is charged."""
    return amount.quantize(UNIT, rounding=ROUND_CEILING)


def show_unit(amount: Decimal) -> str:
    """The one display of a per-image price (dashboard, API `*_display`, emails)."""
    return f"${unit_price(amount):,}"


def show_cents(cents: int) -> str:
    """The one display of a total in integer cents: `$1,234.56`, `-$3.10`."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{rest:02d}"


def show_total(amount: Decimal) -> str:
    """The one display of a charged total: cents, half up (`to_cents`, as invoiced)."""
    return show_cents(int(to_cents(amount) * 100))


def show_up_to(amount: Decimal) -> str:
    """The one display of a bound ("up to", an estimate): cents, rounded up."""
    return show_cents(int(amount.quantize(CENT, rounding=ROUND_CEILING) * 100))


def usd(amount: Decimal, places: int = 6) -> str:
    """A USD amount as the API shows it: a string, never a float."""
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
