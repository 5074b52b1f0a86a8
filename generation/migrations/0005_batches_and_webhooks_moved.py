
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('webhooks', '0001_initial'),
        ('batches', '0001_initial'),
        ('generation', '0004_job_claim_index'),
    ]

    # Batches and webhooks moved to their own apps (batches 0001, webhooks 0001): their
    # models leave this app's state only; no table is dropped.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='providerbatch',
                    name='batch',
                ),
                migrations.RemoveField(
                    model_name='batchitem',
                    name='batch',
                ),
                migrations.AlterField(
                    model_name='job',
                    name='batch',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='jobs', to='batches.batch'),
                ),
                migrations.RemoveField(
                    model_name='batchitem',
                    name='job',
                ),
                migrations.RemoveField(
                    model_name='prompttemplate',
                    name='tenant',
                ),
                migrations.RemoveField(
                    model_name='providerbatch',
                    name='tenant',
                ),
                migrations.RemoveField(
                    model_name='webhookdelivery',
                    name='endpoint',
                ),
                migrations.RemoveField(
                    model_name='webhookendpoint',
                    name='tenant',
                ),
                migrations.DeleteModel(
                    name='Batch',
                ),
                migrations.DeleteModel(
                    name='BatchItem',
                ),
                migrations.DeleteModel(
                    name='PromptTemplate',
                ),
                migrations.DeleteModel(
                    name='ProviderBatch',
                ),
                migrations.DeleteModel(
                    name='WebhookDelivery',
                ),
                migrations.DeleteModel(
                    name='WebhookEndpoint',
                ),
            ],
        ),
    ]
