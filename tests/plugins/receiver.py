"""A tenant's webhook receiver on a free loopback port, recording what it is sent."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200s

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def wait_for_requests(self, n: int, timeout_s: float = 10) -> list[Received]:
        """The first `n` requests (waits on their arrival, never polls)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= n, timeout=timeout_s):
                raise AssertionError(f"{len(self.received)} of {n} webhooks within {timeout_s} s")
            return self.received[:n]

    def wait_for(self, event_type: str, timeout_s: float = 10) -> Received:
        """The first request carrying `event_type` (waits on its arrival, never polls)."""

        def found() -> Received | None:
            return next((r for r in self.received if r.event.get("type") == event_type), None)

        with self.arrived:
            if not self.arrived.wait_for(lambda: found() is not None, timeout=timeout_s):
                raise AssertionError(f"no {event_type} webhook within {timeout_s} s")
        request = found()
        assert request is not None
        return request


@pytest.fixture
def webhook_receiver(settings: Any) -> Iterator[WebhookReceiver]:
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    state = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            with state.arrived:
                state.received.append(Received(self.path, headers, body))
                status = state.statuses.pop(0) if state.statuses else 200
                state.arrived.notify_all()
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/bunch"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
