from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

ROOT = Path(__file__).resolve().parents[2]


def _django(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_mode_without_a_secret_key_refuses_to_start() -> None:
    result = _django({"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "bunch.example"}, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_mode_without_allowed_hosts_refuses_to_start() -> None:
    result = _django(
        {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "s3cr3t-" + "abcdefghij" * 6}, "check"
    )
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must list" in result.stderr


def test_production_settings_pass_the_deploy_check() -> None:
    env = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789" * 2,
        "DJANGO_ALLOWED_HOSTS": "bunch.example",
    }
    result = _django(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "reader"),
    [
        ("DJANGO_DEBUG", "maybe", lambda env: env.bool("DJANGO_DEBUG", True)),
        ("BUNCH_Q_WORKERS", "many", lambda env: env.int("BUNCH_Q_WORKERS", 4)),
        ("DATABASE_URL", "not a url", lambda env: env.db_url("DATABASE_URL")),
    ],
)
def test_bad_values_fail_loudly_naming_the_variable(name: str, value: str, reader) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImproperlyConfigured, match=name):
        reader(Env({name: value}))


def test_defaults_apply_when_variables_are_unset_or_blank() -> None:
    env = Env({"DJANGO_DEBUG": "  "})
    assert env.bool("DJANGO_DEBUG", True) is True
    assert env.list("DJANGO_ALLOWED_HOSTS", ["localhost"]) == ["localhost"]
    assert Env({"X": "a, b,,c"}).list("X", []) == ["a", "b", "c"]


def test_database_url_accepts_sqlite_with_wal_and_immediate_transactions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bunch.sqlite3"  # an absolute path: four slashes in all
    code = (
        "from django.db import connection; from django.conf import settings; "
        "db = settings.DATABASES['default']; "
        "print(db['ENGINE'], db['OPTIONS']['transaction_mode'], db['NAME']); "
        "print(connection.cursor().execute('PRAGMA journal_mode').fetchone()[0])"
    )
    result = _django({"DATABASE_URL": url}, "shell", "-c", code)

    assert result.returncode == 0, result.stderr
    engine, mode, name, journal = " ".join(result.stdout.splitlines()[-2:]).split()
    assert (engine, mode, journal) == ("django.db.backends.sqlite3", "IMMEDIATE", "wal")
    assert name == str(tmp_path / "bunch.sqlite3")


@pytest.mark.parametrize("url", ["mysql://db.example/bunch", "sqlite://", "db.sqlite3"])
def test_a_database_url_of_another_form_fails_at_start_up_naming_the_accepted_ones(
    url: str,
) -> None:
    result = _django({"DATABASE_URL": url}, "check")

    assert result.returncode != 0
    assert f"DATABASE_URL={url!r} is not valid" in result.stderr
    assert "postgres://" in result.stderr and "sqlite:///" in result.stderr


def test_database_url_accepts_both_postgres_spellings() -> None:
    for scheme in ("postgres", "postgresql"):
        config = Env({"DATABASE_URL": f"{scheme}://u:p@db.example:5432/bunch"}).database(
            "DATABASE_URL"
        )
        assert config["ENGINE"] == "django.db.backends.postgresql"
        assert (config["NAME"], config["HOST"], config["PORT"]) == ("bunch", "db.example", 5432)


def test_a_negative_worker_stop_deadline_refuses_to_start() -> None:
    result = _django({"BUNCH_WORKER_STOP_S": "-1"}, "check")
    assert result.returncode != 0
    assert "BUNCH_WORKER_STOP_S must be 0" in result.stderr
