"""`urlpatterns`: Stripe's webhook (mounted under /billing/); `api_urlpatterns`: the
tenant-facing billing API (mounted under /api/v1/)."""

from django.urls import path

from billing import api, webhooks

urlpatterns = [
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe-webhook"),
]

api_urlpatterns = [
    path("usage", api.UsageView.as_view(), name="usage"),
    path("billing/invoice", api.InvoiceView.as_view(), name="billing-invoice"),
    path("billing/checkout", api.CheckoutView.as_view(), name="billing-checkout"),
    path("billing/portal", api.PortalView.as_view(), name="billing-portal"),
]
