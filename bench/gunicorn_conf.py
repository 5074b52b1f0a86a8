"""Gunicorn hooks for benchmark runs only: count each worker's SQL statements."""

from __future__ import annotations

from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    from bench import querycount

    querycount.install("web")
