"""Builds the Stripe gateway from settings: the one place that knows where Stripe is."""

from __future__ import annotations

from django.conf import settings

from billing.stripe_gateway import StripeGateway


def stripe_gateway() -> StripeGateway:
    """A gateway for the configured account (the local emulator unless `STRIPE_API_KEY` is set).

    `STRIPE_MAX_NETWORK_RETRIES` (optional, default 2) bounds the SDK's own retries, which
    reuse the Idempotency-Key; our sync retries later with backoff on top of them.
    """
    return StripeGateway(
        settings.STRIPE_API_KEY,
        api_base=settings.STRIPE_API_BASE or None,
        max_network_retries=getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", 2),
        timeout_s=getattr(settings, "STRIPE_TIMEOUT_S", 20),
    )
