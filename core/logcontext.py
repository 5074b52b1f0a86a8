"""What a log line is about: the request, tenant, job, batch or series being handled.

Context variables, so each request and each asyncio task of the runner carries its own;
`config.logging.JsonFormatter` adds them to every line.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

FIELDS = ("request_id", "tenant", "job_id", "batch_id", "series_id")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "bunch_log", default=None
)


def current() -> dict[str, str]:
    return _context.get() or {}


def bind(**fields: object) -> contextvars.Token[dict[str, str] | None]:
    """Add fields for the rest of this context (a request, a task); returns a reset token."""
    merged = {**current(), **{k: str(v) for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def reset(token: contextvars.Token[dict[str, str] | None]) -> None:
    _context.reset(token)


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        reset(token)
