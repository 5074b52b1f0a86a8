from django.db import migrations

from config.schedules import every_minute


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_meter_lines"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [every_minute("billing.sync", "billing.tasks.sync_usage")]
