from django.db import migrations

from config.schedules import every_minute


class Migration(migrations.Migration):
    dependencies = [
        ("series", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [every_minute("series.advance", "series.tasks.advance")]
