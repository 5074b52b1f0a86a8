"""``/_emulator/*`` control and inspection endpoints (JSON, no auth): for tests and operators."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ApiError
from .invoices import finalize
from .store import new_id
from .subscriptions import render

if TYPE_CHECKING:
    from .server import Emulator


def install(app: web.Application, em: Emulator) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def state(request: web.Request) -> web.Response:
        return web.json_response(inspect(em))

    async def reset(request: web.Request) -> web.Response:
        em.store.reset()
        em.faults.reset()
        return web.json_response({"ok": True})

    async def faults_get(request: web.Request) -> web.Response:
        return web.json_response(em.faults.describe())

    async def faults_set(request: web.Request) -> web.Response:
        try:
            em.faults.configure(await _json(request))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(em.faults.describe())

    async def faults_reset(request: web.Request) -> web.Response:
        em.faults.reset()
        return web.json_response(em.faults.describe())

    async def webhook_set(request: web.Request) -> web.Response:
        body = await _json(request)
        secret = body.get("secret") or new_id("whsec", 32)
        em.webhooks.configure(body.get("url") or None, secret)
        em.store.save()
        return web.json_response({"url": body.get("url"), "secret": secret})

    async def webhooks_flush(request: web.Request) -> web.Response:
        body = await _json(request)
        flushed = await em.webhooks.flush(float(body.get("timeout_s", 10)))
        return web.json_response({"flushed": flushed}, status=200 if flushed else 504)

    async def invoice_finalize(request: web.Request) -> web.Response:
        body = await _json(request)
        if not body.get("customer"):
            return web.json_response({"error": "customer is required"}, status=400)
        try:
            invoice = finalize(em, body["customer"], bool(body.get("pay", True)))
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        em.store.save()
        return web.json_response(invoice)

    router = app.router
    router.add_get("/_emulator/health", health)
    router.add_get("/_emulator/state", state)
    router.add_post("/_emulator/reset", reset)
    router.add_get("/_emulator/faults", faults_get)
    router.add_post("/_emulator/faults", faults_set)
    router.add_delete("/_emulator/faults", faults_reset)
    router.add_post("/_emulator/webhook", webhook_set)
    router.add_post("/_emulator/webhooks/flush", webhooks_flush)
    router.add_post("/_emulator/invoices/finalize", invoice_finalize)


async def _json(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    body = json.loads(text) if text.strip() else {}
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


def inspect(em: Emulator) -> dict[str, Any]:
    data = em.store.data
    return {
        "customers": list(data["customers"].values()),
        "products": list(data["products"].values()),
        "prices": list(data["prices"].values()),
        "subscriptions": [render(em, s) for s in data["subscriptions"].values()],
        "meters": list(data["meters"].values()),
        "meter_events": [
            {k: v for k, v in e.items() if k != "id"} for e in data["meter_events"].values()
        ],
        "meter_event_adjustments": list(data["meter_event_adjustments"].values()),
        "meter_error_reports": list(data["meter_error_reports"].values()),
        "checkout_sessions": list(data["checkout_sessions"].values()),
        "portal_sessions": list(data["portal_sessions"].values()),
        "invoices": list(data["invoices"].values()),
        "events": [
            {"id": e["id"], "type": e["type"], "created": e["created"]}
            for e in [*data["events"].values(), *data["thin_events"].values()]
        ],
        "idempotency_keys": len(data["idempotency"]),
        "webhook": {
            "url": em.store.webhook.get("url"),
            "secret_set": bool(em.store.webhook.get("secret")),
        },
        "webhook_deliveries": em.store.deliveries,
        "faults": em.faults.describe(),
    }
