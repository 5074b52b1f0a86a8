from django.db import migrations

from config.migration_moves import content_types_moved
from config.schedules import every_minute

MODELS = ["webhookendpoint", "webhookdelivery"]


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("generation", "0005_batches_and_webhooks_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    # Renamed, not recreated: every row stays where it is. Due deliveries were rung by
    # generation's sweeper; they have a schedule of their own now.
    operations = [
        *[migrations.AlterModelTable(name=name, table=None) for name in MODELS],
        content_types_moved("generation", "webhooks", MODELS),
        every_minute("webhooks.sweep", "webhooks.tasks.sweep"),
    ]
