"""The usage ledger's indexes by what reads ask: rows in a Stripe state newest first and a
tenant's unsent rows of a period (`usage_state_tenant_time`: the admin's state filter read
a page instead of sorting every unsent row, and the invoice's "not yet sent" count read
every tenant's unsent rows' heap through the index on the state alone), in place of three
that other indexes already start with: the state alone and its LIKE twin (`usage_stripe`
starts with the state), and the tenant alone (`usage_tenant_time` starts with it). One
index to maintain per insert instead of three. On PostgreSQL the old ones are dropped (at
once) and the new one is built in one pass over the table.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0010_usage_rollup_rates'),
        ('generation', '0014_claim_function'),
        ('tenants', '0007_fallback'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usageevent',
            name='stripe_state',
            field=models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=8),
        ),
        # The tenant's index alone, dropped without touching its foreign key (an AlterField
        # drops and re-adds the constraint, which checks every row again).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='usageevent',
                    name='tenant',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='usage_events', to='tenants.tenant'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "billing_usageevent_tenant_id_c5b338b9"',
                    'CREATE INDEX "billing_usageevent_tenant_id_c5b338b9" ON "billing_usageevent" ("tenant_id")',
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(fields=['stripe_state', 'occurred_at', 'tenant'], name='usage_state_tenant_time'),
        ),
    ]
