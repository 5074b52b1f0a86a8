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
