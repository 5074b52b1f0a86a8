"""`{% load money %}`: the one way templates show money (core.money)."""

from __future__ import annotations

from decimal import Decimal

from django import template

from core import money

register = template.Library()


@register.filter
def unit(amount: Decimal | str | None) -> str:
    """A per-image price, 4 decimals: `{{ price|unit }}` → `$0.0386`."""
    return "" if amount is None else money.show_unit(Decimal(amount))


@register.filter
def total(amount: Decimal | str | None) -> str:
    """A total, to the cent: `{{ amount|total }}` → `$502.09`."""
    return "" if amount is None else money.show_total(Decimal(amount))


@register.filter
def up_to(amount: Decimal | str | None) -> str:
    """An estimate's bound, to the cent, rounded up: `{{ estimate|up_to }}` → `$0.05`."""
    return "" if amount is None else money.show_up_to(Decimal(amount))


@register.filter
def cents(value: int | None) -> str:
    """Integer cents: `{{ 50209|cents }}` → `$502.09`."""
    return "" if value is None else money.show_cents(int(value))
