"""The delivery log in its order: per endpoint (the API's cursor pages) and overall (the
admin's changelist), newest first with ties broken by id. Without them each page sorted
every delivery of the endpoint (or of the table)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0003_secret_rotation_overlap"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                fields=["endpoint", "-created_at", "-id"], name="delivery_endpoint_created"
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["-created_at", "-id"], name="delivery_created_id"),
        ),
    ]
