"""A real django-q2 cluster (`manage.py qcluster`) in a subprocess, on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.plugins.gemini import GeminiEmulator

ROOT = Path(__file__).resolve().parents[2]


def _database_env() -> dict[str, str]:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"BUNCH_SQLITE_PATH": str(settings["NAME"])}
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or 5432
    return {"DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"}


class Cluster:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **overrides: str) -> Cluster:
        env = {**self.env, **overrides}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster: no chance to finish or acknowledge anything."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout_s: float) -> float:
        """SIGTERM to the main PID, as a deploy's process manager sends it; the seconds
        until the whole cluster had exited (fails after `timeout_s`)."""
        assert self.process is not None and self.process.poll() is None
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit within {timeout_s} s of SIGTERM") from None
        return time.monotonic() - sent

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: main PID only
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def cluster_factory(
    gemini: GeminiEmulator, transactional_db: None, tmp_path: Path, settings: Any
) -> Iterator[Callable[..., Cluster]]:
    """Start clusters pointed at this test's database and the Gemini emulator."""
    settings.GEMINI_BASE_URL = gemini.base_url
    settings.GEMINI_API_KEY = gemini.api_key
    env = {
        **os.environ,
        **_database_env(),
        "GEMINI_BASE_URL": gemini.base_url,
        "GEMINI_API_KEY": gemini.api_key,
        "BUNCH_Q_WORKERS": "2",
        "BUNCH_PROVIDER_BACKOFF_S": "0.05",
        "BUNCH_PROVIDER_BACKOFF_MAX_S": "0.2",
        "BUNCH_BILLING_ENABLED": "false",
        "C2PA_TRUST_ANCHORS": str(gemini.c2pa_root),
    }
    clusters: list[Cluster] = []

    def make(**overrides: str) -> Cluster:
        cluster = Cluster(env, tmp_path / "qcluster.log").start(**overrides)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.kill()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
