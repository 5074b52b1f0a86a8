from django.db import migrations

from generation.providers.registry import MODELS


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    Price = apps.get_model("billing", "Price")
    for spec in MODELS.values():
        for mode, factor in (("standard", 1), ("batch", spec.batch_discount)):
            Price.objects.update_or_create(
                model=spec.model_id,
                mode=mode,
                defaults={
                    "tier": spec.tier,
                    "input_per_million": spec.input_price_per_m * factor,
                    "text_output_per_million": spec.text_output_price_per_m * factor,
                    "image_output_per_million": spec.image_output_price_per_m * factor,
                },
            )


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
