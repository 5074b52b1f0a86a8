"""Indexes for reads at scale: the job list and the gallery in their order with ties
broken by id (so a cursor's page is always the same rows), the job list filtered by
status in that order, and prompt search (`?q=`, the gallery, the admin) through a trigram index on PostgreSQL.

Django's `icontains` on PostgreSQL is `UPPER(prompt::text) LIKE UPPER('%word%')`, so the
trigram index is on UPPER(prompt). SQLite has no such index; its LIKE scans, which is
fine at a laptop's scale. The indexes are built CONCURRENTLY: the job table stays
writable while they build.
"""

from django.db import migrations, models


def trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS job_prompt_trgm "
        "ON generation_job USING gin (UPPER(prompt) gin_trgm_ops)"
    )
    # Statistics of the indexed expression: without them the planner guesses how many
    # prompts match, and walked a million rows for a word in two hundred of them.
    schema_editor.execute("ANALYZE generation_job")


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS job_prompt_trgm")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("generation", "0007_scheduler"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                fields=["tenant", "status", "-created_at", "-id"], name="job_tenant_status_created"
            ),
        ),
        migrations.RemoveIndex(model_name="job", name="job_tenant_status"),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["tenant", "-created_at", "-id"], name="job_tenant_created_id"),
        ),
        migrations.RemoveIndex(model_name="job", name="job_tenant_created"),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(
                fields=["tenant", "-created_at", "-id"], name="image_tenant_created_id"
            ),
        ),
        migrations.RemoveIndex(model_name="image", name="image_tenant_created"),
        migrations.RunPython(trigram_index, drop_trigram_index),
    ]
