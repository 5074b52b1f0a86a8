from __future__ import annotations

from rest_framework import serializers

from config.serializers import StrictSerializer
from tenants.models import ApiKey, Plan, Tenant, default_scopes


class PlanOut(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "slug",
            "name",
            "monthly_image_quota",
            "monthly_spend_cap",
            "requests_per_minute",
            "max_concurrent_jobs",
            "markup_per_image",
            "allowed_tiers",
            "batch_allowed",
        ]


class TenantOut(serializers.ModelSerializer):
    plan = PlanOut()

    class Meta:
        model = Tenant
        fields = ["slug", "name", "status", "plan", "created_at"]


class QuotaImagesOut(serializers.Serializer):
    quota = serializers.IntegerField()
    used = serializers.IntegerField()
    reserved = serializers.IntegerField()
    remaining = serializers.IntegerField()


class QuotaSpendOut(serializers.Serializer):
    cap = serializers.CharField()
    used = serializers.CharField()
    reserved = serializers.CharField()
    remaining = serializers.CharField()


class QuotaOut(serializers.Serializer):
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    images = QuotaImagesOut()
    spend = QuotaSpendOut()


class MeOut(serializers.Serializer):
    tenant = TenantOut()
    quota = QuotaOut()
    scopes = serializers.ListField(child=serializers.CharField())
    api_key = serializers.CharField(allow_null=True)


# API keys, managed through the API (`/api/v1/api-keys`, scope keys:manage) -----------


class ApiKeyIn(StrictSerializer):
    name = serializers.CharField(max_length=80)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(ApiKey.SCOPES)),
        allow_empty=False,
        required=False,
        help_text=f"Default: {', '.join(default_scopes())}. `keys:manage` only when named.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyOut(serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=list(ApiKey.SCOPES)))
    prefix = serializers.CharField(help_text="The key's public part; the secret is never shown.")

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]


class ApiKeyWithSecretOut(ApiKeyOut):
    key = serializers.CharField(help_text="The whole key. Shown only in this answer: store it.")

    class Meta(ApiKeyOut.Meta):
        fields = [*ApiKeyOut.Meta.fields, "key"]
