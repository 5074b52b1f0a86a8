from django.db import migrations

from config.migration_moves import content_types_moved, schedule_moved

MODELS = ["prompttemplate", "batch", "providerbatch", "batchitem"]


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0001_initial"),
        ("generation", "0005_batches_and_webhooks_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    # Renamed, not recreated: every row stays where it is.
    operations = [
        *[migrations.AlterModelTable(name=name, table=None) for name in MODELS],
        content_types_moved("generation", "batches", MODELS),
        schedule_moved(
            "generation.batches_poll",
            "batches.poll",
            func="batches.tasks.poll",
            old_func="generation.batch_tasks.poll",
        ),
    ]
