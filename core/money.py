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


def usd(amount: Decimal, places: int = 6) -> str:
    """A USD amount as the API shows it: a string, never a float."""
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
