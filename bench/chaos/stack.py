"""The chaos run's stack: bench/stack.py's launcher plus what the faults need.

PostgreSQL, Redis and S3 (moto's server) are reached by the app only through a
`FaultProxy` each; the driver reads the database, the bucket and the emulators directly.
Billing is on, against the Stripe emulator. Ports come from one base port (`--port-base`),
so a run and the test suite's quick run can share the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.proxy import FaultProxy
from bench.stack import PG_URL, ROOT, Stack, _wait_http

STRIPE_KEY = "sk_test_bunch_chaos"
BUCKET = "bunch-chaos"
S3_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "chaos",
    "AWS_SECRET_ACCESS_KEY": "chaos",
}


@dataclass
class ChaosStack(Stack):
    port_base: int = 18700
    redis_db: int = 7
    proxies: dict[str, FaultProxy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.web_port = self.port_base + 1
        self.emulator_port = self.port_base + 2

    @property
    def stripe_url(self) -> str:
        return f"http://127.0.0.1:{self.port_base + 3}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.port_base + 4}"

    def _proxy_port(self, name: str) -> int:
        return self.port_base + {"postgres": 10, "redis": 11, "s3": 12}[name]

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            {
                "BUNCH_BILLING_ENABLED": "true",
                "STRIPE_API_KEY": STRIPE_KEY,
                "STRIPE_API_BASE": self.stripe_url,
                "BUNCH_STORAGE_URL": f"s3://{BUCKET}/media",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self._proxy_port('s3')}",
                **S3_ENV,
            }
        )
        if self.config.broker != "sqlite":
            port = self._proxy_port("postgres")
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/{self.database_name}"
        if self.config.broker == "redis":
            env["REDIS_URL"] = f"redis://127.0.0.1:{self._proxy_port('redis')}/{self.redis_db}"
        return env

    def direct_env(self) -> dict[str, str]:
        """What the driver's own Django uses: the same servers, around the proxies."""
        env = self.env()
        env["AWS_ENDPOINT_URL"] = self.moto_url
        if self.config.broker != "sqlite":
            env["DATABASE_URL"] = f"{PG_URL}/{self.database_name}"
        env.pop("REDIS_URL", None)
        env.pop("BUNCH_BENCH_QUERY_DIR", None)
        return env

    def create_database(self) -> None:
        self.query_dir.mkdir(parents=True, exist_ok=True)
        if self.config.broker == "sqlite":
            return
        import psycopg

        self.database_name = f"bunch_chaos_{int(time.time())}_{os.getpid()}"
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database_name}"')
        if self.config.broker == "redis":
            import redis

            redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db).flushdb()

    def start_proxies(self) -> None:
        upstreams = {"s3": self.port_base + 4}
        if self.config.broker != "sqlite":
            upstreams["postgres"] = 5432
        if self.config.broker == "redis":
            upstreams["redis"] = 6379
        for name, port in upstreams.items():
            self.proxies[name] = FaultProxy(
                listen_port=self._proxy_port(name), upstream_host="127.0.0.1", upstream_port=port
            ).start()

    def start_moto(self) -> None:
        self._spawn(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port_base + 4)],
        )
        _wait_http(f"{self.moto_url}/moto-api/", "moto")
        import boto3

        boto3.client("s3", endpoint_url=self.moto_url, **_boto_kw()).create_bucket(Bucket=BUCKET)

    def start_stripe(self) -> None:
        self._spawn(
            "stripe",
            [
                sys.executable, "-m", "emulators.stripe", "--host", "127.0.0.1",
                "--port", str(self.port_base + 3), "--api-key", STRIPE_KEY,
            ],  # in memory: a --state file is rewritten whole on every call
        )  # fmt: skip
        _wait_http(f"{self.stripe_url}/_emulator/health", "stripe emulator")

    def stop(self) -> None:
        for role in ("moto", "stripe"):
            process = self.processes.get(role)
            if process and process.poll() is None:
                process.terminate()
        super().stop()
        for proxy in self.proxies.values():
            proxy.stop()

    # --- the emulators' control APIs ---------------------------------------------------

    def gemini_faults(self, **rates: Any) -> None:
        _post(f"{self.emulator_url}/_emulator/faults", rates)

    def gemini_clear(self) -> None:
        _call("DELETE", f"{self.emulator_url}/_emulator/faults")

    def gemini_stats(self) -> dict[str, Any]:
        return _call("GET", f"{self.emulator_url}/_emulator/stats")

    def stripe_faults(self, **faults: Any) -> None:
        _post(f"{self.stripe_url}/_emulator/faults", faults)

    def stripe_state(self) -> dict[str, Any]:
        return _call("GET", f"{self.stripe_url}/_emulator/state")

    # --- processes --------------------------------------------------------------------

    def descendants(self, role: str) -> list[int]:
        from bench.procstat import _children, _tree

        process = self.processes[role]
        return [pid for pid in _tree(process.pid, _children()) if pid != process.pid]


def _boto_kw() -> dict[str, str]:
    return {
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def _post(url: str, body: dict[str, Any]) -> Any:
    return _call("POST", url, body)


def run_command(stack: ChaosStack, *argv: str) -> subprocess.CompletedProcess[str]:
    """`manage.py …` as an operator would run it, against the app's own view (proxies)."""
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT, env=stack.direct_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
