"""Serve this host's /metrics for Prometheus where no web process runs (a worker host)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand
from prometheus_client import start_http_server

from ops.collectors import host_registry


class Command(BaseCommand):
    help = "Serve the worker processes' metrics of this host on a port of its own."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9464)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        start_http_server(port, addr=host, registry=host_registry())
        self.stdout.write(f"Serving metrics on http://{host}:{port}/metrics")
        while True:
            time.sleep(3600)
