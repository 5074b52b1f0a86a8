"""Events and signed webhook delivery, as Stripe signs them.

v1 "snapshot" events (``object: "event"``) carry the object; the meter error report is a v2
"thin" notification (``object: "v2.core.event"``) whose details are fetched from
``GET /v2/core/events/{id}``. Both are signed ``t=<unix>,v1=HMAC-SHA256(secret, f"{t}.{raw}")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from .store import Store, new_id, now

API_VERSION = "2026-10-28.endive"
RETRY_DELAYS_S = (0.1, 0.25, 0.5)
log = logging.getLogger("emulators.stripe.webhooks")


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Webhooks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def configure(self, url: str | None, secret: str | None) -> None:
        self.store.webhook = {"url": url, "secret": secret}

    # -- events ---------------------------------------------------------------------------

    def emit(
        self,
        type: str,
        obj: dict[str, Any],
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.store.webhook.get("url") else 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }
        self.store.put("events", event)
        self.queue.put_nowait(event["id"])
        return event

    def emit_thin(self, type: str, related: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": new_id("evt"),
            "object": "v2.core.event",
            "type": type,
            "created": iso(time.time()),
            "livemode": False,
            "context": None,
            "related_object": related,
            "data": data,
            "reason": None,
        }
        self.store.put("thin_events", event)
        self.queue.put_nowait(event["id"])
        return event

    def payload_for(self, event_id: str) -> str | None:
        if event := self.store.data["events"].get(event_id):
            return json.dumps(event, indent=2)
        if thin := self.store.data["thin_events"].get(event_id):
            # A thin notification names the event; its details are fetched separately.
            notification = {k: v for k, v in thin.items() if k not in ("data", "reason")}
            return json.dumps(notification, indent=2)
        return None

    # -- delivery -------------------------------------------------------------------------

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._worker = asyncio.create_task(self._deliver_forever())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._session:
            await self._session.close()

    async def flush(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.queue.join(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _deliver_forever(self) -> None:
        while True:
            event_id = await self.queue.get()
            try:
                await self._deliver(event_id)
            except Exception:  # a broken receiver must never stop the emulator
                log.exception("webhook delivery of %s failed", event_id)
            finally:
                self.queue.task_done()

    async def _deliver(self, event_id: str) -> None:
        url, secret = self.store.webhook.get("url"), self.store.webhook.get("secret")
        payload = self.payload_for(event_id)
        if not url or payload is None:
            return
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S), start=1):
            await asyncio.sleep(delay)
            status, error = await self._post(url, payload, secret or "")
            self.store.deliveries.append(
                {
                    "event": event_id,
                    "url": url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "at": time.time(),
                }
            )
            if status is not None and 200 <= status < 300:
                break
        self.store.save()

    async def _post(self, url: str, payload: str, secret: str) -> tuple[int | None, str | None]:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, secret),
        }
        try:
            async with self._session.post(url, data=payload.encode(), headers=headers) as resp:
                await resp.read()
                return resp.status, None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
