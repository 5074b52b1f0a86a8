"""Rate-limit windows in an UNLOGGED table on PostgreSQL.

Every API request updates its key's and its tenant's window rows. In a logged table each of
those commits waits for a WAL flush while holding the row, so concurrent requests of one
tenant queued behind each other's flushes (docs/performance.md). The counts need no
durability: after a crash PostgreSQL empties an unlogged table, which only resets the
current minute's counts. SQLite has no such thing and needs none (one writer at a time).
"""

from django.db import migrations


def _alter(logged: bool):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name("tenants_ratelimitwindow")
        schema_editor.execute(f"ALTER TABLE {table} SET {'LOGGED' if logged else 'UNLOGGED'}")

    return run


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(_alter(logged=False), _alter(logged=True))]
