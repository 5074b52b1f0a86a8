
import django.db.models.deletion
import django.utils.timezone
import uuid
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('generation', '0004_job_claim_index'),
        ('tenants', '0002_ratelimit_unlogged'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    # The tables exist already (made by generation's migrations): this only moves the
    # models into this app's state, on their old tables; 0002 renames the tables.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='PromptTemplate',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('name', models.CharField(max_length=120)),
                        ('text', models.TextField()),
                        ('defaults', models.JSONField(blank=True, default=dict)),
                        ('kind', models.CharField(choices=[('avatar', 'Avatar'), ('mockup', 'Mockup'), ('banner', 'Banner'), ('image', 'Image')], default='image', max_length=12)),
                        ('aspect_ratio', models.CharField(blank=True, max_length=8)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='prompt_templates', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'generation_prompttemplate',
                        'ordering': ['name', '-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Batch',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('mode', models.CharField(choices=[('standard', 'Standard'), ('batch', 'Batch')], default='batch', max_length=8)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='queued', max_length=10)),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('name', models.CharField(blank=True, max_length=200)),
                        ('total_items', models.PositiveIntegerField(default=0)),
                        ('total_images', models.PositiveIntegerField(default=0)),
                        ('estimated_cost', models.DecimalField(decimal_places=9, default=Decimal('0'), max_digits=16)),
                        ('cancel_requested', models.BooleanField(default=False)),
                        ('api_key', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to='tenants.apikey')),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batches', to='tenants.tenant')),
                        ('template', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='batches', to='batches.prompttemplate')),
                    ],
                    options={
                        'db_table': 'generation_batch',
                        'verbose_name_plural': 'batches',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='ProviderBatch',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('tier', models.CharField(max_length=8)),
                        ('name', models.CharField(blank=True, help_text='batches/<id> at Google.', max_length=100)),
                        ('state', models.CharField(choices=[('creating', 'Creating'), ('pending', 'Pending'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled'), ('expired', 'Expired')], db_index=True, default='creating', max_length=10)),
                        ('input_mode', models.CharField(blank=True, choices=[('inline', 'Inline'), ('file', 'File')], max_length=6)),
                        ('job_ids', models.JSONField(default=list)),
                        ('request_count', models.PositiveIntegerField(default=0)),
                        ('error_message', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('polled_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('ingested_at', models.DateTimeField(blank=True, null=True)),
                        ('lease_until', models.DateTimeField(blank=True, null=True)),
                        ('batch', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='provider_batches', to='batches.batch')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='provider_batches', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'generation_providerbatch',
                        'verbose_name_plural': 'provider batches',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='BatchItem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('index', models.PositiveIntegerField()),
                        ('label', models.CharField(blank=True, max_length=200)),
                        ('locale', models.CharField(blank=True, max_length=35)),
                        ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='items', to='batches.batch')),
                        ('job', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='batch_item', to='generation.job')),
                    ],
                    options={
                        'db_table': 'generation_batchitem',
                        'ordering': ['batch', 'index'],
                        'constraints': [models.UniqueConstraint(fields=('batch', 'index'), name='batch_item_unique_index')],
                    },
                ),
                migrations.AddIndex(
                    model_name='batch',
                    index=models.Index(fields=['tenant', '-created_at'], name='batch_tenant_created'),
                ),
            ],
        ),
    ]
