"""The stack under test: a fresh database, the emulator, the django-q2 cluster, gunicorn.

Every process is a subprocess in its own session on a free loopback port; the benchmark
driver talks to them only over HTTP and through the database, as a client would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgres://postgres@127.0.0.1:5432"
# Benchmarks flush this Redis database at start; nothing else in Bunch uses it.
REDIS_BENCH_URL = "redis://127.0.0.1:6379/13"
BENCH_SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG"


_given: set[int] = set()  # ports of BENCH_PORTS already handed out by this process


def free_port() -> int:
    """A free loopback port: from `BENCH_PORTS` ("18100-18199") when set, so that engineers
    sharing a machine keep to their own ranges; else any the system gives."""
    first, _, last = os.environ.get("BENCH_PORTS", "").partition("-")
    candidates = range(int(first), int(last or first) + 1) if first else [0]
    for port in candidates:
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            given = int(s.getsockname()[1])
            if port:  # port 0: the system's choice, free every time
                _given.add(given)
            return given
    raise RuntimeError(f"no free port in BENCH_PORTS={os.environ.get('BENCH_PORTS')}")


def procfile_web_args() -> tuple[int, int]:
    """(workers, threads) of the Procfile's web line: the bench runs what production runs.

    Under ASGI (uvicorn workers) there is no thread pool to size: threads is 0."""
    text = (ROOT / "Procfile").read_text()
    web = next(line for line in text.splitlines() if line.startswith("web:"))
    workers = re.search(r"--workers\s+(\d+)", web)
    threads = re.search(r"--threads\s+(\d+)", web)
    return int(workers.group(1) if workers else 2), int(threads.group(1) if threads else 0)


@dataclass
class StackConfig:
    broker: str  # sqlite | postgres | redis
    run_dir: Path
    latency: float
    jitter: float
    provider_concurrency: int
    q_workers: int
    jobs_per_task: int
    calls_per_task: int
    task_budget_s: float
    web_workers: int
    web_threads: int
    count_queries: bool = True
    worker_nice: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Stack:
    config: StackConfig
    web_port: int = field(default_factory=free_port)
    emulator_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    database_name: str = ""
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def request_log(self) -> Path:
        return self.config.run_dir / "emulator-requests.jsonl"

    @property
    def query_dir(self) -> Path:
        return self.config.run_dir / "queries"

    @property
    def c2pa_root(self) -> Path:
        return self.config.run_dir / "c2pa-emulator-root.pem"

    def env(self) -> dict[str, str]:
        c = self.config
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": BENCH_SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_LOG_LEVEL": "WARNING",
            "BUNCH_VAR_DIR": str(c.run_dir),
            "BUNCH_BILLING_ENABLED": "false",
            "GEMINI_BASE_URL": self.emulator_url,
            "BUNCH_Q_WORKERS": str(c.q_workers),
            "BUNCH_JOBS_PER_TASK": str(c.jobs_per_task),
            "BUNCH_CALLS_PER_TASK": str(c.calls_per_task),
            "BUNCH_TASK_BUDGET_S": str(c.task_budget_s),
            # Workers verify each image's Content Credentials against the emulator's root,
            # as in development: the trusted path is the one measured.
            "C2PA_TRUST_ANCHORS": str(self.c2pa_root),
            "PYTHONUNBUFFERED": "1",
            **c.extra_env,
        }
        for name in ("DATABASE_URL", "REDIS_URL", "BUNCH_SQLITE_PATH"):
            env.pop(name, None)
        if c.broker == "sqlite":
            env["BUNCH_SQLITE_PATH"] = str(c.run_dir / "db.sqlite3")
        else:
            env["DATABASE_URL"] = f"{PG_URL}/{self.database_name}"
        if c.broker == "redis":
            env["REDIS_URL"] = REDIS_BENCH_URL
        if c.count_queries:
            env["BUNCH_BENCH_QUERY_DIR"] = str(self.query_dir)
        return env

    # --- database -----------------------------------------------------------------------

    def create_database(self) -> None:
        self.query_dir.mkdir(parents=True, exist_ok=True)
        if self.config.broker == "sqlite":
            return
        import psycopg

        prefix = os.environ.get("BENCH_DB_PREFIX", "bunch_bench")  # one's own on a shared host
        self.database_name = f"{prefix}_{int(time.time())}_{os.getpid()}"
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database_name}"')
        if self.config.broker == "redis":
            import redis

            redis.Redis.from_url(REDIS_BENCH_URL).flushdb()

    def drop_database(self) -> None:
        if not self.database_name:
            return
        import psycopg

        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')

    # --- processes ----------------------------------------------------------------------

    def _spawn(self, role: str, argv: list[str]) -> None:
        log = (self.config.run_dir / f"{role}.log").open("ab")
        self._logs.append(log)
        self.processes[role] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_emulator(self) -> None:
        c = self.config
        self._spawn(
            "emulator",
            [
                sys.executable, "-m", "emulators.gemini",
                "--host", "127.0.0.1", "--port", str(self.emulator_port),
                "--latency", str(c.latency), "--jitter", str(c.jitter),
                "--image-bytes", "realistic",
                "--max-concurrency", str(c.provider_concurrency),
                "--request-log", str(self.request_log),
                "--c2pa-root-out", str(self.c2pa_root),
            ],
        )  # fmt: skip
        _wait_http(f"{self.emulator_url}/_emulator/health", "emulator")

    def start_web(self) -> None:
        c = self.config
        argv = [
            str(Path(sys.executable).parent / "gunicorn"), "config.asgi",
            "--worker-class", "config.asgi_worker.Worker",
            "--bind", f"127.0.0.1:{self.web_port}", "--workers", str(c.web_workers),
            "--log-level", "warning", "--backlog", "2048",
        ]  # fmt: skip
        if c.count_queries:
            argv += ["--config", "python:bench.gunicorn_conf"]
        self._spawn("web", argv)
        _wait_http(f"{self.web_url}/healthz", "gunicorn")

    def start_worker(self) -> None:
        module = "bench.worker" if self.config.count_queries else None
        argv = [sys.executable, "-m", module] if module else [sys.executable, "manage.py"]
        argv = argv if module else [*argv, "qcluster"]
        if self.config.worker_nice:
            argv = ["nice", "-n", str(self.config.worker_nice), *argv]
        self._spawn("worker", argv)

    def stop(self) -> None:
        # SIGTERM to the main PID only is django-q2's graceful stop (shared/reference).
        for role in ("web", "worker", "emulator"):
            process = self.processes.get(role)
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for log in self._logs:
            log.close()


def _wait_http(url: str, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout_s:.0f} s")
