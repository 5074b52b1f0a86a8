from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.serializers import StrictSerializer
from webhooks.models import WebhookDelivery, WebhookEndpoint

EVENT_TYPES_HELP = "Events to receive; empty means all. Unknown names are refused with a 400."


# Any string passes here so that the service can refuse unknown names all at once, by name;
# the schema still lists the known ones.
@extend_schema_field({"type": "string", "enum": list(WebhookEndpoint.EVENT_TYPES)})
class EventTypeField(serializers.CharField):
    pass


class WebhookEndpointCreateIn(StrictSerializer):
    url = serializers.URLField(max_length=500)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=EventTypeField(), required=False, help_text=EVENT_TYPES_HELP
    )


class WebhookEndpointUpdateIn(StrictSerializer):
    url = serializers.URLField(max_length=500, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=EventTypeField(), required=False, help_text=EVENT_TYPES_HELP
    )
    enabled = serializers.BooleanField(required=False)


class WebhookEndpointOut(serializers.ModelSerializer):
    event_types = serializers.ListField(child=EventTypeField(), help_text=EVENT_TYPES_HELP)
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Until then, deliveries also carry a signature with the secret before the "
        "last rotation.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "created_at",
            "previous_secret_expires_at",
        ]


MAX_OVERLAP_S = 7 * 24 * 3600


class RotateSecretIn(StrictSerializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_OVERLAP_S,
        required=False,
        help_text="How long the old secret keeps signing too (default 24 h; 0 ends it now).",
    )


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    secret = serializers.CharField(
        help_text=(
            "Signs every delivery (Standard Webhooks). Returned only on creation and "
            "rotation: store it."
        )
    )

    class Meta(WebhookEndpointOut.Meta):
        fields = [*WebhookEndpointOut.Meta.fields, "secret"]


class WebhookDeliveryOut(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "response_code",
            "duration_ms",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "payload",
        ]
