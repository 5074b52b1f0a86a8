"""Moving the test database between migrations, for the tests of a data migration."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(*targets: tuple[str, str | None]) -> Any:
    """The database at `targets` (an app's migration, or None: none of that app's); the
    apps registry as of them, for the historical models."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))
    return executor.loader.project_state([t for t in targets if t[1]]).apps


def migrate_to_latest() -> None:
    """Every app at its latest migration. Going back in one app also unapplies the other
    apps' migrations that depend on it (batches 0006 depends on billing 0010); bringing
    back only that app's latest left them unapplied for the tests after it in the same
    process, which then found a column missing."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(executor.loader.graph.leaf_nodes()))
