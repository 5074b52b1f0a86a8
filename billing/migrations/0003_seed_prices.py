from django.db import migrations

from core.catalog import MODELS


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from billing.pricing import registry_prices

    Price = apps.get_model("billing", "Price")
    for spec in MODELS.values():
        for mode in ("standard", "batch"):
            Price.objects.update_or_create(
                model=spec.model_id,
                mode=mode,
                defaults={"tier": spec.tier, **registry_prices(tier=spec.tier, mode=mode)},
            )


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
