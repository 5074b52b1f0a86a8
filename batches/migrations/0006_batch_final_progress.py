"""Batches keep their progress (items per status, images made, cost) once finished, so a
list of finished batches reads it from the batch instead of its jobs (`batches.progress`).

The backfill writes it on the batches that have already finished, 500 at a time, each
chunk one grouped query over its batches' jobs. It is exact whenever it runs: a finished
batch's jobs no longer change. A batch that finishes under code from before this column
keeps it null, and lists compute its figures from its jobs, as before.
"""

from django.db import migrations, models


def fill(apps, schema_editor):
    from batches.progress import final_progress_fill

    final_progress_fill(
        batch_model=apps.get_model("batches", "Batch"),
        job_model=apps.get_model("generation", "Job"),
        image_model=apps.get_model("generation", "Image"),
        usage_model=apps.get_model("billing", "UsageEvent"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0005_batch_item_locale"),
        ("billing", "0010_usage_rollup_rates"),
        ("generation", "0014_claim_function"),
    ]

    operations = [
        migrations.AddField(
            model_name="batch",
            name="final_progress",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
