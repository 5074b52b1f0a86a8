"""The aiohttp application: API dispatch (auth, faults, idempotency) and wiring."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from . import catalog, control, events, invoices, meters, pages, sessions, subscriptions
from .errors import ApiError
from .faults import PRE_KINDS, Faults, fault_error
from .forms import decode
from .routing import Route
from .store import SAVE_INTERVAL_S, Store, new_id, now
from .webhooks import API_VERSION, Webhooks

log = logging.getLogger("emulators.stripe")
API_ROUTES = [
    *catalog.routes.items,
    *subscriptions.routes.items,
    *meters.routes.items,
    *sessions.routes.items,
    *invoices.routes.items,
    *events.routes.items,
]
dumps = partial(json.dumps, indent=2)


@dataclass
class RequestContext:
    """What a handler may need from the HTTP request it serves."""

    base_url: str = ""
    idempotency_key: str | None = None


class Emulator:
    def __init__(
        self,
        *,
        state_path: Path | None = None,
        api_key: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.store = Store(state_path)
        self.webhooks = Webhooks(self.store)
        if webhook_url:
            self.webhooks.configure(webhook_url, webhook_secret or new_id("whsec", 32))
        self.faults = Faults()
        self.api_key = api_key
        self.request = RequestContext()

    # -- API dispatch ---------------------------------------------------------------------

    async def dispatch(self, request: web.Request, route: Route) -> web.StreamResponse:
        raw = await request.text() if request.method == "POST" else request.query_string
        request_id = new_id("req", 14)
        try:
            self._authenticate(request)
        except ApiError as exc:
            return _error_response(exc, request_id)
        fault = self.faults.pick(request.method, request.path)
        if fault in PRE_KINDS:
            return _error_response(fault_error(fault), request_id)
        response = self._execute(request, route, raw, request_id)
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        if fault == "drop_after_commit":
            # The write is committed and its idempotent result saved; the client never hears.
            assert request.transport is not None
            request.transport.abort()
        return response

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not key:
            raise ApiError(
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
                status=401,
            )
        if (self.api_key and key != self.api_key) or not key.startswith(("sk_", "rk_")):
            raise ApiError(f"Invalid API Key provided: {key[:8]}****{key[-4:]}", status=401)

    def _execute(
        self, request: web.Request, route: Route, raw: str, request_id: str
    ) -> web.Response:
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        account = hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()
        scope = f"{account[:12]}:{key}"
        fingerprint = _fingerprint(request.method, request.path, raw)
        saved = self.store.data["idempotency"].get(scope) if key else None
        if saved is not None:
            return _replay(saved, key or "", fingerprint, request_id)
        self.request = RequestContext(_base_url(request), key)
        try:
            params = _decode(request.path, raw)
            status, body, headers = 200, route.handler(self, params, **request.match_info), {}
        except ApiError as exc:
            status, body, headers = exc.status, exc.body(), exc.headers
        except ValueError as exc:
            status, body, headers = 400, ApiError(f"Invalid request: {exc}").body(), {}
        text = dumps(body)
        # Stripe saves a result once the endpoint ran; a refused request saves nothing.
        if key and not 400 <= status < 500:
            self.store.data["idempotency"][scope] = {
                "id": scope,
                "created": now(),
                "fingerprint": fingerprint,
                "status": status,
                "body": text,
                "headers": headers,
                "request_id": request_id,
            }
        if request.method != "GET":
            self.store.save()
        if key:
            headers = {**headers, "Idempotency-Key": key}
        return _json_response(text, status, request_id, headers)


def _decode(path: str, raw: str) -> dict[str, Any]:
    """v1 bodies and all query strings are form-encoded; v2 bodies are JSON."""
    if path.startswith("/v2/") and raw.lstrip().startswith("{"):
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        return body
    return decode(raw)


def _fingerprint(method: str, path: str, raw: str) -> str:
    try:
        canonical = json.dumps(_decode(path, raw) if raw else {}, sort_keys=True)
    except ValueError:
        canonical = raw
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _replay(saved: dict[str, Any], key: str, fingerprint: str, request_id: str) -> web.Response:
    if saved["fingerprint"] != fingerprint:
        return _error_response(
            ApiError(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            ),
            request_id,
        )
    headers = {
        **saved["headers"],
        "Idempotency-Key": key,
        "Idempotent-Replayed": "true",
        "Original-Request": saved["request_id"],
    }
    return _json_response(saved["body"], saved["status"], request_id, headers)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _json_response(
    text: str, status: int, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    all_headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION, **(headers or {})}
    return web.Response(
        text=text, status=status, content_type="application/json", headers=all_headers
    )


def _error_response(exc: ApiError, request_id: str) -> web.Response:
    return _json_response(dumps(exc.body()), exc.status, request_id, exc.headers)


async def _unknown_url(request: web.Request) -> web.Response:
    exc = ApiError(
        f"Unrecognized request URL ({request.method}: {request.path}). "
        "This emulator supports the subset of the Stripe API that Bunch uses.",
        status=404,
    )
    return _error_response(exc, new_id("req", 14))


def _handler(emulator: Emulator, route: Route) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await emulator.dispatch(request, route)

    return handle


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application()
    app["emulator"] = emulator
    for route in API_ROUTES:
        app.router.add_route(route.method, route.path, _handler(emulator, route))
    control.install(app, emulator)
    pages.install(app, emulator)
    app.router.add_route("*", "/v1/{tail:.*}", _unknown_url)
    app.router.add_route("*", "/v2/{tail:.*}", _unknown_url)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL_S / 2)
            emulator.store.flush()

    async def on_startup(app: web.Application) -> None:
        emulator.webhooks.start()
        app["flusher"] = asyncio.create_task(flusher())

    async def on_cleanup(app: web.Application) -> None:
        app["flusher"].cancel()
        await emulator.webhooks.stop()
        emulator.store.flush()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
