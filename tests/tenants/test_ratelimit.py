from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.windowcounts import WindowCounts
from tenants import ratelimit
from tenants.models import RateLimitWindow
from tests.plugins.actors import Actor, assert_error, make_plan

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"


def test_request_over_the_limit_gets_429_with_headers_and_window_resets(owner: Actor) -> None:
    make_plan(requests_per_minute=3)
    owner.tenant.refresh_from_db()
    client = owner.api()
    with time_machine.travel("2026-11-27 12:00:10Z", tick=False) as clock:
        remaining = [client.get(ME)["RateLimit-Remaining"] for _ in range(3)]
        over = client.get(ME)
        clock.shift(60)
        after_reset = client.get(ME)

    assert remaining == ["2", "1", "0"]
    assert_error(over, 429, "rate_limited")
    assert over["Retry-After"] == "50"
    assert over["RateLimit-Limit"] == "3"
    assert over["RateLimit-Remaining"] == "0"
    assert over["RateLimit-Reset"] == "50"
    assert after_reset.status_code == 200
    assert after_reset["RateLimit-Remaining"] == "2"


def test_limit_is_per_tenant_across_keys(owner: Actor, member: Actor) -> None:
    make_plan(requests_per_minute=2)
    with time_machine.travel("2026-11-27 12:00:00Z", tick=False):
        assert owner.api().get(ME).status_code == 200
        assert member.api().get(ME).status_code == 200
        assert_error(member.api().get(ME), 429, "rate_limited")


def test_other_tenants_are_not_limited_by_a_busy_neighbour(owner: Actor, outsider: Actor) -> None:
    make_plan(requests_per_minute=1)
    with time_machine.travel("2026-11-27 12:00:00Z", tick=False):
        assert owner.api().get(ME).status_code == 200
        assert owner.api().get(ME).status_code == 429
        assert outsider.api().get(ME).status_code == 200


def _counts_in_store_file() -> dict[str, int]:
    """What another connection to the counts' file (as another process has) reads."""
    with closing(sqlite3.connect(ratelimit.sqlite_store().path)) as other:
        return dict(other.execute("SELECT key, count FROM window_count").fetchall())


@pytest.mark.sqlite_only
def test_on_sqlite_counts_land_in_a_file_of_their_own_not_the_application_database(
    owner: Actor,
) -> None:
    client = owner.api()
    with time_machine.travel("2026-11-27 12:00:10Z", tick=False):
        for _ in range(3):
            assert client.get(ME).status_code == 200

    assert settings.RATE_LIMIT_BACKEND == "sqlite"
    assert RateLimitWindow.objects.count() == 0
    assert ratelimit.sqlite_store().path == Path(f"{connection.settings_dict['NAME']}-ratelimit")
    assert _counts_in_store_file() == {f"t:{owner.tenant.pk}": 3, f"k:{owner.api_key.pk}": 3}


def _hit_in_another_process(key: str, limit: int, at: float, tmp_path: Path) -> int:
    """Count one request against `key` from a separate Python process on this test's
    database, at the instant `at`; answer what it says is left."""
    probe = (
        "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
        "django.setup(); from tenants import ratelimit; "
        f"print(ratelimit.hit({key!r}, {limit}, clock=lambda: {at!r}).remaining)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {
        "BUNCH_VAR_DIR": str(tmp_path),
        "BUNCH_SQLITE_PATH": str(connection.settings_dict["NAME"]),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.sqlite_only
def test_on_sqlite_the_limit_is_shared_by_every_process_on_the_database(
    owner: Actor, tmp_path: Path
) -> None:
    make_plan(requests_per_minute=4)
    client = owner.api()
    at = dt.datetime(2026, 11, 27, 12, 0, 10, tzinfo=dt.UTC)
    with time_machine.travel(at, tick=False):
        seen_here = [client.get(ME)["RateLimit-Remaining"] for _ in range(2)]
        left_there = _hit_in_another_process(f"t:{owner.tenant.pk}", 4, at.timestamp(), tmp_path)
        last = client.get(ME)
        over = client.get(ME)

    assert seen_here == ["3", "2"]
    assert left_there == 1
    assert last.status_code == 200 and last["RateLimit-Remaining"] == "0"
    assert_error(over, 429, "rate_limited")
    assert over["RateLimit-Limit"] == "4" and over["Retry-After"] == "50"


def test_a_fresh_migrate_creates_the_database_and_the_rate_limit_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BUNCH_SQLITE_PATH")}
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=Path(__file__).resolve().parents[2],
        env=env | {"BUNCH_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stderr
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
    with closing(sqlite3.connect(tmp_path / "db.sqlite3-ratelimit")) as counts:
        assert counts.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert counts.execute("SELECT count(*) FROM window_count").fetchone() == (0,)


def test_me_writes_nothing_to_the_application_database_but_postgresqls_counts(
    owner: Actor,
) -> None:
    client = owner.api()
    with time_machine.travel("2026-11-27 12:00:10Z", tick=False) as clock:
        assert client.get(ME).status_code == 200  # the key's last use, once a minute
        clock.shift(5)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(ME).status_code == 200

    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE")
    ]
    if connection.vendor == "sqlite":
        assert writes == []
    else:
        assert writes and all("tenants_ratelimitwindow" in sql for sql in writes)


def test_each_connection_to_the_counts_file_learns_its_own_new_counts(tmp_path: Path) -> None:
    here, there = WindowCounts(tmp_path / "counts"), WindowCounts(tmp_path / "counts")

    assert here.hit(["x"], 60) == {"x": 1}
    assert there.hit(["x"], 60) == {"x": 2}
    assert here.hit(["x", "y"], 60) == {"x": 3, "y": 1}
    assert there.hit(["y"], 60) == {"y": 2}
    assert here.hit(["x"], 120) == {"x": 1}  # a new window, and the older one is gone
    with closing(sqlite3.connect(tmp_path / "counts")) as other:
        assert other.execute("SELECT key, window_start, count FROM window_count").fetchall() == [
            ("x", 120, 1),
            ("y", 60, 2),
        ]


def test_a_count_interrupted_before_reading_its_result_does_not_spoil_the_next(
    tmp_path: Path,
) -> None:
    store = WindowCounts(tmp_path / "counts")
    store.hit(["x"], 60)
    store._connection().execute("INSERT INTO seen (key, count) VALUES ('x', 99)")  # left over

    assert store.hit(["x"], 60)["x"] == 2
    assert store.hit(["x"], 60) == {"x": 3}
