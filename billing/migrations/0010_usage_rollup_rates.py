"""The rollups gain the rates and markup the images were priced at in their key, so an
invoice's token lines (per line, kind of token and rate) read the rollups instead of a
month of usage events.

The backfill is set-based: one grouped scan of the folded ledger per tenant × UTC day ×
tier × model × mode × rates × markup (no join: the rates are the event's own columns),
then the rollup rows rewritten in bulk. Where a day's key had one set of rates (every
key unless a price or the plan's markup changed that day) its rows, whatever their
fallback keys, take those rates: exact. The few keys priced at several rates are taken
out of the rollups and their events unmarked, so the next fold adds them back under the
full key; until then reads take them from the ledger. Every read stays exact throughout.

On PostgreSQL the rollup table is locked against writes (not reads) before the scan, so
no fold commits between the scan and the rewrite; a fold waiting on that lock fails once
the key has changed and the next one folds its events.
"""

import datetime as dt
from decimal import Decimal

from django.db import migrations, models
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

UNRATED = Decimal(-1)
RATES = ("input_per_million", "text_output_per_million", "image_output_per_million")
DAY_KEY = ("tenant_id", "day", "tier", "model", "mode")
OLD_KEY = (*DAY_KEY, "requested_tier", "fallback_reason")
COUNTERS = (
    "images",
    "input_text_tokens",
    "input_image_tokens",
    "output_text_tokens",
    "output_image_tokens",
    "thoughts_tokens",
    "provider_cost",
    "billed",
)
BATCH = 5000

# What the scan found, per database alias, for the rewrite after the schema change.
_scanned: dict[str, dict[tuple, set[tuple]]] = {}


def lock_and_scan(apps, schema_editor):
    alias = schema_editor.connection.alias
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("LOCK TABLE billing_usagerollup IN EXCLUSIVE MODE")
    UsageEvent = apps.get_model("billing", "UsageEvent")
    groups = (
        UsageEvent.objects.using(alias)
        .filter(rolled_up=True)
        .order_by()
        .annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values_list(*DAY_KEY, *RATES, "markup")
        .annotate(n=Count("pk"))
    )
    rates: dict[tuple, set[tuple]] = {}
    for *key, i, t, o, markup, _ in groups.iterator(chunk_size=BATCH):
        priced = tuple(UNRATED if r is None else r for r in (i, t, o)) + (markup,)
        rates.setdefault(tuple(key), set()).add(priced)
    _scanned[alias] = rates


def _check_now(schema_editor):
    """Run the rows' deferred foreign-key checks now: PostgreSQL alters no table with
    pending trigger events, and later operations of this migration alter this one."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def rewrite_with_rates(apps, schema_editor):
    alias = schema_editor.connection.alias
    UsageEvent = apps.get_model("billing", "UsageEvent")
    UsageRollup = apps.get_model("billing", "UsageRollup")
    rates = _scanned.pop(alias)
    rows = list(UsageRollup.objects.using(alias).values(*OLD_KEY, *COUNTERS))
    kept = []
    for row in rows:
        found = rates.get(tuple(row[k] for k in DAY_KEY), set())
        if len(found) == 1:
            [(i, t, o, markup)] = found
            kept.append(
                UsageRollup(
                    **row,
                    input_per_million=i,
                    text_output_per_million=t,
                    image_output_per_million=o,
                    markup=markup,
                )
            )
    mixed = [key for key, found in rates.items() if len(found) > 1]
    UsageRollup.objects.using(alias).all().delete()
    UsageRollup.objects.using(alias).bulk_create(kept, batch_size=BATCH)
    for tenant_id, day, tier, model, mode in mixed:
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        UsageEvent.objects.using(alias).filter(
            Q(occurred_at__gte=start, occurred_at__lt=start + dt.timedelta(days=1)),
            rolled_up=True,
            tenant_id=tenant_id,
            tier=tier,
            model=model,
            mode=mode,
        ).update(rolled_up=False)
    _check_now(schema_editor)


def merge_rates(apps, schema_editor):
    """Backwards: one row per key without the rates again."""
    alias = schema_editor.connection.alias
    UsageRollup = apps.get_model("billing", "UsageRollup")
    merged = (
        UsageRollup.objects.using(alias)
        .order_by()
        .values(*OLD_KEY)
        .annotate(**{c: Sum(c) for c in COUNTERS})
    )
    rows = [UsageRollup(**row) for row in merged]
    UsageRollup.objects.using(alias).all().delete()
    UsageRollup.objects.using(alias).bulk_create(rows, batch_size=BATCH)
    _check_now(schema_editor)


def rate_field():
    return models.DecimalField(decimal_places=4, default=UNRATED, max_digits=10)


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_usage_rollup_fallbacks")]

    operations = [
        migrations.RunPython(lock_and_scan, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="usagerollup", name="usage_rollup_key_fallback"),
        migrations.AddField(
            model_name="usagerollup", name="input_per_million", field=rate_field()
        ),
        migrations.AddField(
            model_name="usagerollup", name="text_output_per_million", field=rate_field()
        ),
        migrations.AddField(
            model_name="usagerollup", name="image_output_per_million", field=rate_field()
        ),
        migrations.AddField(
            model_name="usagerollup",
            name="markup",
            field=models.DecimalField(decimal_places=9, default=0, max_digits=14),
        ),
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
                    "input_per_million",
                    "text_output_per_million",
                    "image_output_per_million",
                    "markup",
                ),
                name="usage_rollup_key_rates",
            ),
        ),
        migrations.RunPython(rewrite_with_rates, merge_rates),
    ]
