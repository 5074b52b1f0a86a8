from __future__ import annotations

from rest_framework import serializers

from tenants.models import Plan, Tenant


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
