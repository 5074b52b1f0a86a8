from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.plugins.actors",
    "tests.plugins.gemini",
    "tests.plugins.stripe",
    "tests.plugins.pipeline",
    "tests.plugins.cluster",
    "tests.plugins.receiver",
    "tests.plugins.s3",
]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """This session's own metrics directory (config/settings.py) goes with it, and so do
    those of sessions that were killed."""
    import os
    import shutil
    from pathlib import Path

    from django.conf import settings

    sessions = Path(settings.METRICS_DIR).parent
    if sessions.name != "test-metrics":
        return
    for directory in sessions.glob("*-*"):
        pid = int(directory.name.split("-")[0]) if directory.name[0].isdigit() else 0
        if pid == os.getpid() or (pid and not Path(f"/proc/{pid}").exists()):
            shutil.rmtree(directory, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`postgres_only` tests run in the PostgreSQL pass (`DATABASE_URL` set) and are
    deselected, not skipped, on SQLite: there is nothing for them to prove there; and
    `sqlite_only` tests the other way round."""
    import os

    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    other = "sqlite_only" if on_postgres else "postgres_only"
    kept = [item for item in items if item.get_closest_marker(other) is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def _fresh_process_memory() -> Iterator[None]:
    """Each test starts without what earlier tests left in per-process memory: the web's
    last doorbell ring, cached estimate prices, remembered quota period ids and API keys
    (their rows were rolled back with the earlier test's database), the cache."""
    from billing.pricing import price_book_changed
    from generation import queue
    from tenants import keycache, services

    queue.forget_last_ring()
    price_book_changed()
    services._period_ids.clear()
    services._touched.clear()
    keycache.forget_all()
    from django.core.cache import cache

    cache.clear()  # e.g. API-key failures counted per address (tenants/lockout.py)
    _fresh_rate_limit_counts()
    yield


def _fresh_rate_limit_counts() -> None:
    """On SQLite the counts live in a file beside the test database (tenants/ratelimit.py),
    which no rollback or flush empties: the next test, whose tenant may get the same id,
    would inherit them. A developer's own database (a test before any database is set up)
    is left alone."""
    from django.conf import settings

    from tenants import ratelimit

    db = settings.DATABASES["default"]
    if settings.RATE_LIMIT_BACKEND == "sqlite" and str(db["NAME"]) == str(db["TEST"]["NAME"]):
        ratelimit.sqlite_store().clear()
