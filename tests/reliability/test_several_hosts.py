"""Several hosts: a web host and two worker hosts, separate processes that share only
PostgreSQL, Redis and S3 (moto's server), each with an empty `BUNCH_VAR_DIR` of its own.

Everything a tenant does goes through the web host over HTTP; the worker hosts run the
jobs, the webhook delivery and the schedules. At the end, every image is downloadable
through the web host and no host has written anything under its var dir but its log.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.plugins.gemini import GeminiEmulator
from tests.plugins.s3 import S3Server, _free_port

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/11"  # this test's own Redis database, flushed at start
KINDS = ["avatar", "mockup", "banner", "image"]

# Whole stacks of processes: under pytest-xdist they run one after another, on one worker.
pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("whole-stack")]


class Receiver(http.server.BaseHTTPRequestHandler):
    deliveries: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.deliveries.append({"headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_receiver() -> Iterator[str]:
    Receiver.deliveries = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def shared_services(s3_server: S3Server) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database, a flushed Redis database and an S3 bucket."""
    name = f"bunch_hosts_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS).flushdb()
    bucket = f"hosts-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    yield {
        "DATABASE_URL": f"{PG}/{name}",
        "REDIS_URL": REDIS,  # (so the provider budget lives there too, under this prefix)
        "BUNCH_BUDGET_REDIS_PREFIX": f"bunch-test-budget:{name}:",
        "BUNCH_STORAGE_URL": f"s3://{bucket}/media",
        **s3_server.env(),
    }
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Host:
    def __init__(self, role: str, var_dir: Path, env: dict[str, str]) -> None:
        self.role = role
        self.var_dir = var_dir
        var_dir.mkdir(parents=True)
        (var_dir / "logs").mkdir()
        self.env = {**env, "BUNCH_VAR_DIR": str(var_dir)}
        self.process: subprocess.Popen[bytes] | None = None

    def run(self, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start(self, argv: list[str]) -> None:
        log = (self.var_dir / "logs" / f"{self.role}.log").open("ab")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def files(self) -> list[str]:
        """Every file under the var dir that is not a log."""
        return sorted(
            str(p.relative_to(self.var_dir))
            for p in self.var_dir.rglob("*")
            if p.is_file() and p.parent.name != "logs"
        )


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def json(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        status, data, _ = self.call(method, path, body, headers)
        assert status < 300, (status, data[:500])
        return json.loads(data)


def _wait_for(condition: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)  # other processes are doing the work; nothing here to advance
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_a_web_host_and_two_worker_hosts_share_only_postgres_redis_and_s3(
    tmp_path: Path, gemini: GeminiEmulator, shared_services: dict[str, str], webhook_receiver: str
) -> None:
    gemini.configure(latency=0.05, jitter=0)
    common = {
        # Hosts as in production: not pytest's processes (PYTEST_VERSION would give each a
        # metrics directory of its own under its var dir; they count in the session's).
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "BUNCH_")) and k != "PYTEST_VERSION"
        },
        **shared_services,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GEMINI_BASE_URL": gemini.base_url,
        "GEMINI_API_KEY": gemini.api_key,
        "BUNCH_BILLING_ENABLED": "false",
        "BUNCH_WEBHOOKS_ALLOW_PRIVATE": "true",
        "BUNCH_Q_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    web = Host("web", tmp_path / "web", common)
    workers = [Host(f"worker-{n}", tmp_path / f"worker-{n}", common) for n in ("a", "b")]
    hosts = [web, *workers]
    web.run("migrate", "--noinput", "-v0")
    key = web.run("seed_demo").strip().splitlines()[-1]
    port = _free_port()
    try:
        web.start([
            str(Path(sys.executable).parent / "gunicorn"), "config.asgi",
            "--worker-class", "config.asgi_worker.Worker", "--workers", "2",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
        ])  # fmt: skip
        for worker in workers:
            worker.start([sys.executable, "manage.py", "qcluster"])
        api = Api(f"http://127.0.0.1:{port}", key)
        _wait_for(lambda: _up(api), 60, "the web host")

        endpoint = api.json("POST", "/api/v1/webhook-endpoints", {"url": webhook_receiver})
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            jobs = list(
                pool.map(
                    lambda n: api.json(
                        "POST",
                        "/api/v1/generations",
                        {"prompt": f"host test {n}", "kind": KINDS[n % 4]},
                    ),
                    range(200),
                )
            )
        batch = api.json(
            "POST",
            "/api/v1/batches",
            {"mode": "realtime", "items": [{"prompt": f"batch item {n}"} for n in range(3)]},
        )

        done = _wait_for(lambda: _all_finished(api, [j["id"] for j in jobs]), 180, "200 jobs")
        assert {j["status"] for j in done} == {"succeeded"}
        assert {j["kind"] for j in done} == set(KINDS)
        first = done[0]["images"][0]
        edit = api.json(
            "POST",
            f"/api/v1/images/{first['id']}/edits",
            {"instruction": "make it blue"},
            Prefer="wait=60",
        )
        assert edit["status"] == "succeeded" and edit["images"][0]["parent_id"] == first["id"]
        finished_batch = _wait_for(
            lambda: _finished(api.json("GET", f"/api/v1/batches/{batch['id']}")), 180, "batch"
        )
        assert finished_batch["status"] == "succeeded"
        status, archive, _ = api.call("GET", f"/api/v1/batches/{batch['id']}/results.zip")
        assert status == 200
        pngs = [n for n in zipfile.ZipFile(io.BytesIO(archive)).namelist() if n.endswith(".png")]
        assert len(pngs) == 3

        images = [i for j in [*done, edit] for i in j["images"]]
        for image in images:
            status, data, _ = api.call("GET", f"/api/v1/images/{image['id']}/content")
            assert status == 200
            assert hashlib.sha256(data).hexdigest() == image["sha256"]
        delivered = _wait_for(
            lambda: [d for d in Receiver.deliveries if d["body"].get("type") == "job.succeeded"],
            60,
            "a webhook delivery",
        )
        headers = {k.lower(): v for k, v in delivered[0]["headers"].items()}
        assert headers.get("webhook-signature", "").startswith("v1,")
        assert endpoint["id"]
        ran_on = _hosts_that_ran_jobs(workers)
    finally:
        for host in hosts:
            host.stop()

    assert ran_on == {"worker-a", "worker-b"}, "both worker hosts should have run jobs"
    for host in hosts:
        assert host.files() == [], f"{host.role} wrote {host.files()[:5]}"


def _up(api: Api) -> bool:
    try:
        return api.call("GET", "/api/v1/me")[0] == 200
    except OSError:
        return False


def _finished(body: dict[str, Any]) -> dict[str, Any] | None:
    return body if body["status"] in ("succeeded", "failed", "canceled") else None


def _all_finished(api: Api, ids: list[str]) -> list[dict[str, Any]] | None:
    bodies = []
    for job_id in ids:
        body = api.json("GET", f"/api/v1/generations/{job_id}")
        if not _finished(body):
            return None
        bodies.append(body)
    return bodies


def _hosts_that_ran_jobs(workers: list[Host]) -> set[str]:
    ran = set()
    for worker in workers:
        log = (worker.var_dir / "logs" / f"{worker.role}.log").read_text(errors="replace")
        if "generation.tasks.run_job" in log:
            ran.add(worker.role)
    return ran
