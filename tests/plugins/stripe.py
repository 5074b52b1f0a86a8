"""Fixtures that run the Stripe emulator (`python -m emulators.stripe`) on a free loopback port.

def test_something(stripe_fake):           # faults reset, no webhook URL, before the test
    gateway = StripeGateway(stripe_fake.api_key, api_base=stripe_fake.api_base)
    stripe_fake.set_faults(rate_500=0.5, seed=1)
    stripe_fake.finalize_invoice(customer_id, pay=False)

def test_webhooks(stripe_fake, stripe_webhooks):   # a local receiver the emulator posts to
    delivery = stripe_webhooks.wait_for("invoice.paid")
    delivery.body, delivery.signature, stripe_webhooks.secret
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_bunch_emulator"
START_TIMEOUT_S = 20


class StripeEmulator:
    def __init__(self, state_path: Path, log_path: Path) -> None:
        self.api_key = API_KEY
        self.state_path = state_path
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- process --------------------------------------------------------------------------

    def start(self) -> None:
        cmd = [
            sys.executable, "-m", "emulators.stripe", "--host", "127.0.0.1",
            "--port", str(self.port), "--state", str(self.state_path), "--api-key", self.api_key,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log
            )
        self.port = self._read_port(self.process)

    def _read_port(self, process: subprocess.Popen[bytes]) -> int:
        """The emulator prints its address once it listens; wait for that line."""
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline().decode() if ready else ""
        if "listening on" not in line:
            self.stop()
            log = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Stripe emulator did not start: {line!r}\n{log}")
        return int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port and state file."""
        self.stop()
        self.start()

    # -- control calls --------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_base + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """rate_429=, rate_429_lock_timeout=, rate_500=, rate_503_retry=,
        drop_after_commit_rate=, latency_s=, path_prefix=, seed=,
        next_n={"kind": "drop_after_commit" | "429" | "500" | ..., "n": 3} (or a list)."""
        return dict(self._call("POST", "/_emulator/faults", faults))

    def reset_faults(self) -> None:
        self._call("DELETE", "/_emulator/faults")

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_emulator/state"))

    def reset(self) -> None:
        """Forget everything: objects, events, idempotency keys, faults."""
        self._call("POST", "/_emulator/reset")

    def set_webhook(self, url: str | None, secret: str | None = None) -> str:
        """Post events to ``url`` (None stops delivery); returns the signing secret."""
        return str(
            self._call("POST", "/_emulator/webhook", {"url": url, "secret": secret})["secret"]
        )

    def flush_webhooks(self, timeout_s: float = 10) -> None:
        """Return once every queued event has been delivered (or given up on)."""
        self._call("POST", "/_emulator/webhooks/flush", {"timeout_s": timeout_s})

    def finalize_invoice(self, customer: str, pay: bool = True) -> dict[str, Any]:
        """Close the customer's current period: invoice it, then invoice.paid or
        invoice.payment_failed (and the subscription past_due)."""
        return dict(
            self._call("POST", "/_emulator/invoices/finalize", {"customer": customer, "pay": pay})
        )


@pytest.fixture(scope="session")
def stripe_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeEmulator]:
    directory = tmp_path_factory.mktemp("stripe-emulator")
    emulator = StripeEmulator(directory / "state.json", directory / "emulator.log")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def stripe_fake(stripe_emulator: StripeEmulator) -> StripeEmulator:
    """The shared emulator with no faults and no webhook URL; objects from earlier tests stay,
    so tests create their own customers and unique event names."""
    stripe_emulator.reset_faults()
    stripe_emulator.set_webhook(None)
    return stripe_emulator


# -- a webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class WebhookReceiver:
    """A loopback HTTP server that records what the emulator posts."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        self.secret = ""
        self.seen: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                signature = self.headers.get("Stripe-Signature", "")
                receiver.deliveries.put(Delivery(body, signature))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, event_type: str, timeout_s: float = 10) -> Delivery:
        """The next delivery of ``event_type``; earlier deliveries stay in ``seen``."""
        for delivery in self.seen:
            if delivery.event.get("type") == event_type:
                self.seen.remove(delivery)
                return delivery
        while True:
            try:
                delivery = self.deliveries.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"no {event_type} webhook within {timeout_s}s") from None
            if delivery.event.get("type") == event_type:
                return delivery
            self.seen.append(delivery)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stripe_webhooks(stripe_fake: StripeEmulator) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.secret = stripe_fake.set_webhook(receiver.url)
    try:
        yield receiver
    finally:
        stripe_fake.set_webhook(None)
        receiver.close()


@pytest.fixture
def stripe_client(stripe_fake: StripeEmulator) -> Any:
    """The real SDK's `StripeClient`, pointed at the emulator (for conformance tests)."""
    import stripe

    base = stripe_fake.api_base
    return stripe.StripeClient(
        stripe_fake.api_key,
        base_addresses={"api": base, "meter_events": base},
        max_network_retries=2,
    )
