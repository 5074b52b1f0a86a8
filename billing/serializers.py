from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from billing.selectors import GROUPS, InvoiceEstimate
from config.serializers import StrictSerializer
from core.money import usd
from tenants.models import Plan
from tenants.serializers import QuotaOut

MAX_RANGE_DAYS = 366


class UsageQueryIn(serializers.Serializer):
    from_ = serializers.DateField(required=False, help_text="First UTC day (inclusive).")
    to = serializers.DateField(required=False, help_text="Last UTC day (inclusive).")
    group_by = serializers.ChoiceField(choices=list(GROUPS), default="day")

    def get_fields(self) -> dict[str, Any]:
        # `from` is a Python keyword; expose the field under its query-string name.
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.now().astimezone(dt.UTC).date()
        first = attrs.get("from") or today.replace(day=1)
        last = attrs.get("to") or today
        if first > last:
            raise serializers.ValidationError({"from": ["`from` must not be after `to`."]})
        if (last - first).days >= MAX_RANGE_DAYS:
            raise serializers.ValidationError({"to": [f"At most {MAX_RANGE_DAYS} days at once."]})
        return {
            "start": dt.datetime.combine(first, dt.time(), dt.UTC),
            "end": dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC),
            "group_by": attrs["group_by"],
        }


class TokensOut(serializers.Serializer):
    input_text = serializers.IntegerField()
    input_image = serializers.IntegerField()
    output_text = serializers.IntegerField()
    output_image = serializers.IntegerField()
    thoughts = serializers.IntegerField()


class UsageRowOut(serializers.Serializer):
    images = serializers.IntegerField()
    tokens = TokensOut()
    provider_cost = serializers.SerializerMethodField(help_text="USD, exact (9 places).")
    billed = serializers.SerializerMethodField(help_text="USD, exact (9 places).")

    def get_provider_cost(self, row: dict[str, Any]) -> str:
        return usd(row["provider_cost"], 9)

    def get_billed(self, row: dict[str, Any]) -> str:
        return usd(row["billed"], 9)


class InvoiceLineOut(serializers.Serializer):
    line = serializers.CharField(help_text="tier_mode (`lite_standard`), or `markup`.")
    tier = serializers.CharField()
    mode = serializers.CharField()
    kind = serializers.CharField(
        help_text="input, text_output, image_output, markup; legacy for usage billed "
        "before the switch to token meters."
    )
    description = serializers.CharField(
        help_text="As on the invoice: `Nano Banana 2 Lite: image output, 1,120,000 tokens "
        "× $0.00003 = $33.60`."
    )
    quantity = serializers.IntegerField(help_text="Tokens, or images.")
    unit = serializers.CharField(help_text="tokens or images")
    unit_price = serializers.SerializerMethodField(help_text="USD per unit, exact.")
    images = serializers.IntegerField()
    amount_cents = serializers.IntegerField(help_text="quantity × unit price, half-up, once.")

    def get_unit_price(self, line: Any) -> str | None:
        price = line.unit_price
        return None if price is None else format(price.normalize(), "f")


class UsageGroupOut(UsageRowOut):
    key = serializers.SerializerMethodField(
        help_text="The day, model id or mode; with group_by=line, the invoice line "
        "(`lite_standard.image_output@0.00003`)."
    )
    line = InvoiceLineOut(
        required=False, allow_null=True, help_text="With group_by=line: the invoice line."
    )

    def get_key(self, row: dict[str, Any]) -> str:
        key = row["key"]
        return key.isoformat() if isinstance(key, dt.date) else str(key)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if "line" not in instance:
            data.pop("line", None)
        return data


class FallbackDayOut(serializers.Serializer):
    day = serializers.DateField()
    requested_model = serializers.CharField()
    served_model = serializers.CharField()
    reason = serializers.CharField(help_text="primary_throttled or deadline")
    images = serializers.IntegerField()
    billed = serializers.SerializerMethodField()

    def get_billed(self, row: dict[str, Any]) -> str:
        return usd(row["billed"] or Decimal(0), 9)


class UsageOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    group_by = serializers.CharField()
    groups = UsageGroupOut(many=True)
    total = UsageRowOut()
    fallbacks = FallbackDayOut(many=True, help_text="Images another model served, per day.")
    quota = QuotaOut()


class CheckoutIn(StrictSerializer):
    plan = serializers.SlugRelatedField(slug_field="slug", queryset=Plan.objects.all())


class UrlOut(serializers.Serializer):
    url = serializers.URLField()


class InvoiceAdjustmentOut(serializers.Serializer):
    description = serializers.CharField()
    amount_cents = serializers.IntegerField()


class InvoicePlanOut(serializers.Serializer):
    name = serializers.CharField()
    amount_cents = serializers.IntegerField(help_text="The plan's monthly fee.")


class StripePreviewOut(serializers.Serializer):
    reachable = serializers.BooleanField()
    total_cents = serializers.IntegerField(allow_null=True)


class InvoiceOut(serializers.Serializer):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    currency = serializers.CharField()
    plan = InvoicePlanOut()
    adjustments = InvoiceAdjustmentOut(
        many=True, help_text="Stripe's prorations of a plan change in this period."
    )
    lines = InvoiceLineOut(
        many=True,
        help_text="Usage, per line of Stripe's invoice: tokens of each kind per model, mode "
        "and rate, and the markup per image.",
    )
    total_cents = serializers.IntegerField(
        help_text="Plan fee + adjustments + usage lines: Stripe's next invoice once every "
        "image is reported."
    )
    not_yet_reported = serializers.IntegerField(
        help_text="Images in the total that are not yet reported to Stripe."
    )
    stripe = StripePreviewOut()

    @staticmethod
    def from_estimate(estimate: InvoiceEstimate) -> dict[str, Any]:
        return {
            "period_start": estimate.period_start,
            "period_end": estimate.period_end,
            "currency": "usd",
            "plan": {"name": estimate.plan_name, "amount_cents": estimate.plan_fee_cents},
            "adjustments": estimate.adjustments,
            "lines": estimate.lines,
            "total_cents": estimate.total_cents,
            "not_yet_reported": estimate.not_yet_reported,
            "stripe": {
                "reachable": estimate.stripe_total_cents is not None,
                "total_cents": estimate.stripe_total_cents,
            },
        }
