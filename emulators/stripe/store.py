"""The emulator's whole state: plain JSON-able dicts, written atomically to the state file.

Writes are coalesced: a write request dumps the state at once if the last dump is older
than `SAVE_INTERVAL_S`, otherwise it marks the state dirty and the server's flusher (and
its shutdown) dump it. Dumping the whole state on every meter event made a run of
thousands of events quadratic. A hard kill can lose the last half second of writes; a
restart (SIGTERM) loses nothing."""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ApiError, no_such

COLLECTIONS = (
    "customers",
    "products",
    "prices",
    "subscriptions",
    "meters",
    "meter_events",
    "meter_event_adjustments",
    "meter_error_reports",
    "checkout_sessions",
    "portal_sessions",
    "invoices",
    "events",
    "thin_events",
    "idempotency",
)
_ALPHABET = string.ascii_letters + string.digits
SAVE_INTERVAL_S = 0.5


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = {name: {} for name in COLLECTIONS}
        self.webhook: dict[str, str | None] = {"url": None, "secret": None}
        self.deliveries: list[dict[str, Any]] = []
        self.dirty = False
        self._saved_at = 0.0
        if path and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        saved = json.loads(path.read_text())
        for name in COLLECTIONS:
            self.data[name] = saved.get(name, {})
        self.webhook = saved.get("webhook", self.webhook)
        self.deliveries = saved.get("webhook_deliveries", [])

    def save(self) -> None:
        """Persist soon: now, or within `SAVE_INTERVAL_S` (see `flush`)."""
        if time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            self._write()
        else:
            self.dirty = True

    def flush(self) -> None:
        if self.dirty:
            self._write()

    def _write(self) -> None:
        self.dirty = False
        self._saved_at = time.monotonic()
        if not self.path:
            return
        snapshot = {
            **self.data,
            "webhook": self.webhook,
            "webhook_deliveries": self.deliveries[-500:],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(snapshot, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def reset(self) -> None:
        for name in COLLECTIONS:
            self.data[name] = {}
        self.deliveries.clear()
        self._write()

    def put(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.data[collection][obj["id"]] = obj
        return obj

    def get(self, collection: str, object_id: str, kind: str, param: str = "id") -> dict[str, Any]:
        obj = self.data[collection].get(object_id)
        if obj is None:
            raise no_such(kind, object_id, param)
        return obj

    def all(self, collection: str) -> list[dict[str, Any]]:
        return list(self.data[collection].values())


def now() -> int:
    return int(time.time())


def as_int(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        message = f"Invalid integer: {value}"
        raise ApiError(message, code="parameter_invalid_integer", param=param) from None


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def paginate(
    items: list[dict[str, Any]], params: dict[str, Any], url: str, *, newest_first: bool = True
) -> dict[str, Any]:
    """Stripe list envelope: newest first, ``limit`` (default 10) and cursor params."""
    ordered = items
    if newest_first:
        ordered = sorted(reversed(items), key=lambda o: o.get("created", 0), reverse=True)
    limit = max(1, min(100, as_int(params.get("limit", 10), "limit")))
    if after := params.get("starting_after"):
        ids = [o.get("id") for o in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    elif before := params.get("ending_before"):
        ids = [o.get("id") for o in ordered]
        ordered = ordered[: ids.index(before)][-limit:] if before in ids else []
    page = ordered[:limit]
    return {"object": "list", "data": page, "has_more": len(ordered) > limit, "url": url}
