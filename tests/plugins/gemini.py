"""Fixtures that run the Gemini emulator (`python -m emulators.gemini`) on a free loopback port.

def test_something(gemini):            # faults and stats reset before the test
    provider = GeminiProvider(api_key=gemini.api_key, base_url=gemini.base_url)
    gemini.set_faults(rate_429=1.0)

The app trusts the emulator's C2PA test root wherever it talks to the emulator
(`inline_worker`, `cluster_factory`), as `make run` does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GeminiEmulator:
    def __init__(
        self, base_url: str, api_key: str, process: subprocess.Popen[bytes], c2pa_root: Path
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.process = process
        # The test root CA that signs the emulator's C2PA manifests (written at start-up).
        self.c2pa_root = c2pa_root

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read() or b"{}"))

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", path, body or {})

    def set_faults(self, **faults: float | str) -> dict[str, Any]:
        """Global rates, or with model="…" rates for that model's calls only."""
        return self._post("/_emulator/faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/_emulator/faults")

    def configure(self, **settings: float | str | bool) -> dict[str, Any]:
        """latency=, jitter=, batch_step_seconds=, image_bytes="small"|"realistic"."""
        return self._post("/_emulator/config", dict(settings))

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_emulator/stats")

    def requests(self) -> list[dict[str, Any]]:
        """The calls since the last reset: model, `contents` as received, the answer
        (inline data as `dataSha256` and `size`; emulators/gemini/calls.py)."""
        return list(self._call("GET", "/_emulator/requests")["requests"])

    def expire_batch(self, name: str) -> dict[str, Any]:
        return self._post(f"/_emulator/batches/{name.removeprefix('batches/')}:expire")

    def reset(self) -> None:
        """No faults, zero latency, fresh stats and trigger counters."""
        self.clear_faults()
        self.configure(latency=0, jitter=0, batch_step_seconds=0.05, image_bytes="small")
        self._post("/_emulator/reset")


def _wait_until_up(emulator: GeminiEmulator, deadline_s: float = 20) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            raise RuntimeError(f"Gemini emulator exited with code {emulator.process.returncode}")
        try:
            emulator._call("GET", "/_emulator/health")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)  # nothing to wait on but the port opening
    raise RuntimeError("Gemini emulator did not start in time")


@pytest.fixture(scope="session")
def gemini_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeminiEmulator]:
    port = _free_port()
    c2pa_root = tmp_path_factory.mktemp("c2pa") / "emulator-root.pem"
    api_key = "test-gemini-key"
    cmd = [
        sys.executable, "-m", "emulators.gemini", "--host", "127.0.0.1", "--port", str(port),
        "--latency", "0", "--jitter", "0", "--image-bytes", "small", "--api-key", api_key,
        "--batch-step-seconds", "0.05", "--c2pa-root-out", str(c2pa_root), "--record-calls",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_EMULATOR_")}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    emulator = GeminiEmulator(f"http://127.0.0.1:{port}", api_key, process, c2pa_root)
    try:
        _wait_until_up(emulator)
        yield emulator
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def gemini(gemini_emulator: GeminiEmulator) -> Iterator[GeminiEmulator]:
    gemini_emulator.reset()
    yield gemini_emulator
