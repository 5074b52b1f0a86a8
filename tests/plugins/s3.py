"""S3-compatible object storage for tests: moto's server on a free loopback port.

`storage` runs a test once on the filesystem and once on S3 (`BUNCH_STORAGE_URL`
semantics: django-storages, boto3 reading the standard AWS_* variables), each with an
empty store of its own.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.env import Env


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
        }

    def client(self) -> Any:
        import boto3

        env = self.env()
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = S3Server(endpoint=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)  # nothing to wait on but the port opening
    yield server
    process.terminate()
    process.wait(timeout=10)
    log.close()


@dataclass
class Store:
    kind: str  # "filesystem" | "s3"
    media_root: Path
    server: S3Server | None = None
    bucket: str = ""
    prefix: str = ""

    def objects(self) -> list[str]:
        """What the S3 bucket holds (names relative to the prefix)."""
        assert self.server is not None
        return [k.removeprefix(f"{self.prefix}/") for k in self.server.keys(self.bucket)]


@pytest.fixture(params=["filesystem", "s3"])
def storage(
    request: pytest.FixtureRequest,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Store:
    settings.MEDIA_ROOT = tmp_path / "media"
    if request.param == "filesystem":
        settings.STORAGES = {**settings.STORAGES, "default": Env({}).storage("BUNCH_STORAGE_URL")}
        return Store(kind="filesystem", media_root=settings.MEDIA_ROOT)
    server: S3Server = request.getfixturevalue("s3_server")
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"bunch-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/media"
    settings.STORAGES = {**settings.STORAGES, "default": Env({"S": url}).storage("S")}
    return Store(
        kind="s3", media_root=settings.MEDIA_ROOT, server=server, bucket=bucket, prefix="media"
    )
