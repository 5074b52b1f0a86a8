"""A Stripe-compatible emulator for local development and tests.

Speaks the v1 wire format that stripe-python 16.1.0 sends (form-encoded bodies, Bearer keys,
``Idempotency-Key``) for the subset Bunch uses: customers, products, prices, subscriptions,
Billing Meters, Checkout and portal sessions, invoices and signed webhooks. Standalone: it must
never import Django or the project's apps.
"""
