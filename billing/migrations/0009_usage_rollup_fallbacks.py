"""The rollups gain the requested tier and the fallback reason in their key, so the usage
page's and the usage API's fallbacks read the rollups instead of the ledger.

Rollups folded before this migration counted fallback-served images under the empty
requested tier and reason. Those events (few: only images a fallback served) are taken
out of their rollup rows and unmarked, in this migration's transaction, so the next fold
adds them back under their full key; until then reads take them from the ledger. Every
read stays exact throughout.
"""

import datetime as dt

from django.db import migrations, models
from django.db.models import Count, DecimalField, F, Sum
from django.db.models.functions import TruncDate

TOKEN_FIELDS = (
    "input_text_tokens",
    "input_image_tokens",
    "output_text_tokens",
    "output_image_tokens",
    "thoughts_tokens",
)
MONEY = DecimalField(max_digits=24, decimal_places=9)


def unfold_fallback_events(apps, schema_editor):
    UsageEvent = apps.get_model("billing", "UsageEvent")
    UsageRollup = apps.get_model("billing", "UsageRollup")
    folded = UsageEvent.objects.filter(rolled_up=True, image__fallback_reason__gt="")
    groups = (
        folded.order_by()
        .annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("tenant_id", "day", "tier", "model", "mode")
        .annotate(
            images=Count("pk"),
            **{field: Sum(field) for field in TOKEN_FIELDS},
            provider_cost=Sum("provider_cost", output_field=MONEY),
            billed=Sum("billed", output_field=MONEY),
        )
    )
    for g in groups:
        UsageRollup.objects.filter(
            tenant_id=g["tenant_id"],
            day=g["day"],
            tier=g["tier"],
            model=g["model"],
            mode=g["mode"],
            requested_tier="",
            fallback_reason="",
        ).update(
            images=F("images") - g["images"],
            **{field: F(field) - (g[field] or 0) for field in TOKEN_FIELDS},
            provider_cost=F("provider_cost") - g["provider_cost"],
            billed=F("billed") - g["billed"],
        )
    folded.update(rolled_up=False)
    UsageRollup.objects.filter(images=0).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_token_meters"),
        ("generation", "0010_fallback"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagerollup",
            name="requested_tier",
            field=models.CharField(blank=True, default="", max_length=8),
        ),
        migrations.AddField(
            model_name="usagerollup",
            name="fallback_reason",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.RemoveConstraint(model_name="usagerollup", name="usage_rollup_key"),
        migrations.AddConstraint(
            model_name="usagerollup",
            constraint=models.UniqueConstraint(
                fields=(
                    "tenant",
                    "day",
                    "tier",
                    "model",
                    "mode",
                    "requested_tier",
                    "fallback_reason",
                ),
                name="usage_rollup_key_fallback",
            ),
        ),
        migrations.RunPython(unfold_fallback_events, migrations.RunPython.noop),
    ]
