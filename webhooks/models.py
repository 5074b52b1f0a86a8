"""Tenants' webhook endpoints and each delivery made to them."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import models
from django.utils import timezone

from tenants.models import Tenant


class WebhookEndpoint(models.Model):
    EVENT_TYPES = (
        "job.succeeded",
        "job.failed",
        "job.canceled",
        "batch.completed",
        "batch.failed",
        "series.completed",
        "series.failed",
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    # Needed in clear to sign each delivery (Standard Webhooks, whsec_<base64>); shown to
    # the tenant once, at creation or rotation.
    secret = models.CharField(max_length=100)
    # After a rotation the old secret still signs deliveries (a second signature) until
    # `previous_secret_expires_at`, so receivers can switch without losing a message.
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty means all events.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    def signing_secrets(self, now: dt.datetime) -> list[str]:
        """The current secret, then the previous one while its overlap lasts."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.event_types or event_type in self.event_types)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64, db_index=True, help_text="webhook-id")
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # An endpoint's delivery log, newest first, ties broken by id (the cursor's
            # order); and every delivery newest first (the admin's changelist).
            models.Index(
                fields=["endpoint", "-created_at", "-id"], name="delivery_endpoint_created"
            ),
            models.Index(fields=["-created_at", "-id"], name="delivery_created_id"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"
