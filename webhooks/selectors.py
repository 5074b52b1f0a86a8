"""Tenant-scoped reads of webhook endpoints and their deliveries."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from config.errors import NotFound
from tenants.models import Tenant
from webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoints_for_tenant(tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(tenant=tenant)


def endpoint_get_for_tenant(tenant: Tenant, endpoint_id: uuid.UUID | str) -> WebhookEndpoint:
    """The tenant's endpoint; another tenant's is as absent as one that never existed."""
    endpoint = endpoints_for_tenant(tenant).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No webhook endpoint with this id.")
    return endpoint


def deliveries_for_endpoint(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint)


def delivery_get_for_endpoint(
    endpoint: WebhookEndpoint, delivery_id: uuid.UUID | str
) -> WebhookDelivery:
    delivery = deliveries_for_endpoint(endpoint).filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No delivery with this id for this webhook endpoint.")
    return delivery
