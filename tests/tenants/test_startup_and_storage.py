"""What a fresh web process and the rate-limit table are like before any request."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connection

from config.warmup import warm_up


def _run_probe(probe: str, var_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `probe` in a fresh Python process of the project; it must exit cleanly."""
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "BUNCH_VAR_DIR": str(var_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_fresh_web_process_has_every_view_imported_and_frozen_before_its_first_request(
    tmp_path: Path,
) -> None:
    probe = (
        "import gc, sys, config.wsgi; "
        "print(all(m in sys.modules for m in "
        "('generation.api', 'billing.api', 'tenants.views', 'rest_framework.views')), "
        "gc.get_freeze_count() > 50_000, gc.get_threshold()[0])"
    )
    result = _run_probe(probe, tmp_path)
    # …and its start-up objects are frozen out of the garbage collector's full collections,
    # which a request's objects reach less often (config.warmup)
    assert result.stdout.strip() == "True True 50000"
    assert "Warm-up" not in result.stderr and "Unauthorized" not in result.stderr


def test_warm_up_answers_its_own_request_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        warm_up(get_wsgi_application())

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.django_db
def test_rate_limit_windows_are_unlogged_on_postgresql_and_plain_on_sqlite() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT relpersistence FROM pg_class WHERE relname = 'tenants_ratelimitwindow'"
            )
            assert cursor.fetchone() == ("u",)
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'tenants_ratelimitwindow'"
            )
            assert cursor.fetchone() == (1,)


def test_a_spawned_django_q_worker_loads_the_runner_and_freezes_its_start_up_objects(
    tmp_path: Path,
) -> None:
    probe = (
        "import gc, os, sys, django; "
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); "
        "from django_q.signals import post_spawn; "
        "before = 'google.genai' in sys.modules; "
        "post_spawn.send(sender='django_q', proc_name='Worker-1'); "
        "print(before, 'generation.runner' in sys.modules and 'google.genai' in sys.modules, "
        "gc.get_freeze_count() > 50_000)"
    )
    result = _run_probe(probe, tmp_path)
    assert result.stdout.split() == ["False", "True", "True"]
