"""The price book: what an image costs the platform and what the tenant is billed.

Rounding rule: per-image amounts are exact (every price is a whole number of
nano-dollars per token, so token × price has at most 9 decimal places and is stored
unrounded). Totals shown on invoices are rounded half-up to the cent once, per line.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from billing.models import Price
from core.catalog import MODELS, TokenUsage, get_model
from core.money import token_cost


@dataclass(frozen=True)
class Rates:
    """The price book's rates an image was priced at, USD per 1M tokens."""

    input_per_million: Decimal
    text_output_per_million: Decimal
    image_output_per_million: Decimal


@dataclass(frozen=True)
class Cost:
    provider_cost: Decimal
    markup: Decimal
    rates: Rates | None = None

    @property
    def billed(self) -> Decimal:
        return self.provider_cost + self.markup


def registry_prices(*, tier: str, mode: str) -> dict[str, Decimal]:
    """The list prices from the model registry (DESIGN.md), for seeding the price book."""
    spec = get_model(tier)
    factor = spec.batch_discount if mode == "batch" else Decimal(1)
    return {
        "input_per_million": spec.input_price_per_m * factor,
        "text_output_per_million": spec.text_output_price_per_m * factor,
        "image_output_per_million": spec.image_output_price_per_m * factor,
    }


def price_for(*, model: str, mode: str) -> Price:
    """The price book row; seeded from the registry the first time a line is used."""
    price = Price.objects.filter(model=model, mode=mode).first()
    if price is None:
        tier = next(t for t, spec in MODELS.items() if spec.model_id == model)
        price, _ = Price.objects.get_or_create(
            model=model, mode=mode, defaults={"tier": tier, **registry_prices(tier=tier, mode=mode)}
        )
    return price


# Estimates (the reservation before a call, the dashboard's "cost before you click") read
# the price book through a per-process copy at most this old; what is billed is always
# computed from the price book as it is when the image is stored (`price_for`).
ESTIMATE_PRICES_MAX_AGE_S = 30.0
_estimate_prices: dict[tuple[str, str], tuple[float, Price]] = {}
_estimate_lock = threading.Lock()


def price_for_estimate(*, model: str, mode: str) -> Price:
    now = time.monotonic()
    cached = _estimate_prices.get((model, mode))
    if cached is not None and now - cached[0] < ESTIMATE_PRICES_MAX_AGE_S:
        return cached[1]
    price = price_for(model=model, mode=mode)
    with _estimate_lock:
        _estimate_prices[(model, mode)] = (now, price)
    return price


def price_book_changed(**_: object) -> None:
    """Connected to Price saves and deletes: this process's estimates use the new prices."""
    with _estimate_lock:
        _estimate_prices.clear()


def cost_of(*, usage: TokenUsage, price: Price, markup: Decimal) -> Cost:
    """Cost of one image from the response's token usage, never from a constant."""
    provider = (
        token_cost(usage.input_text_tokens + usage.input_image_tokens, price.input_per_million)
        + token_cost(
            usage.output_text_tokens + usage.thoughts_tokens, price.text_output_per_million
        )
        + token_cost(usage.output_image_tokens, price.image_output_per_million)
    )
    rates = Rates(
        input_per_million=Decimal(price.input_per_million),
        text_output_per_million=Decimal(price.text_output_per_million),
        image_output_per_million=Decimal(price.image_output_per_million),
    )
    return Cost(provider_cost=provider, markup=markup, rates=rates)


def estimate_tokens(*, prompt: str, input_images: int) -> int:
    # An upper bound: a token is never shorter than one byte of UTF-8.
    return len(prompt.encode()) + 16 + input_images * 1120


def estimate_image_cost(
    *, tier: str, mode: str, image_size: str, prompt: str, input_images: int, markup: Decimal
) -> Cost:
    """The most one image can cost: the "up to" figure, and the spend reserved before the
    call. Input is over-counted (a token is never shorter than a byte); output is the
    request's own cap (`ModelSpec.max_output_tokens`): the image's tokens at the image
    rate, and the thinking and text the model may add at the text rate."""
    spec = get_model(tier)
    price = price_for_estimate(model=spec.model_id, mode=mode)
    usage = TokenUsage(
        prompt_tokens=0,
        input_text_tokens=estimate_tokens(prompt=prompt, input_images=0),
        input_image_tokens=input_images * spec.input_image_tokens,
        output_text_tokens=spec.text_tokens_max,
        output_image_tokens=spec.image_tokens[image_size],
        thoughts_tokens=spec.thinking_tokens_max,
        total_tokens=0,
    )
    return cost_of(usage=usage, price=price, markup=markup)
