"""The HTTP face of the emulator: routing, auth, latency, faults, stats and control endpoints."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import core, credentials, markers
from .batches import BatchService
from .calls import CallLog
from .catalog import MODELS
from .faults import FaultInjector, FaultRates
from .render import RenderCache

Handler = Callable[..., Awaitable[web.StreamResponse]]
_V = r"/(?:v1|v1beta|v1alpha)"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8401
    latency: float = 4.0
    jitter: float = 0.5
    api_key: str | None = None
    seed: int = 0
    batch_step_seconds: float = 5.0
    image_bytes: str = "realistic"
    faults: FaultRates = field(default_factory=FaultRates)
    # Calls in flight beyond this get 429 RESOURCE_EXHAUSTED with RetryInfo (0: no limit),
    # like a provider's per-project concurrency quota.
    max_concurrency: int = 0
    # One JSON line per generateContent call (prompt hash, wall-clock start/end, model
    # time), for benchmarks that need the model time of each image.
    request_log: str | None = None
    # Keep each call's contents and answer for GET /_emulator/requests (calls.py): tests
    # turn it on; hashing the inline data costs ~8 ms of CPU per 1.5 MB image.
    record_calls: bool = False
    # Sign every image with a C2PA manifest shaped like Google's: with a test chain made at
    # start-up, or the one in these files (certificates leaf first, root last; the key).
    c2pa: bool = True
    c2pa_cert: str | None = None
    c2pa_key: str | None = None
    c2pa_root_out: str | None = None


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.by_model: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.in_flight = getattr(self, "in_flight", 0)
        self.max_in_flight = self.in_flight
        self.requests = 0

    def record(self, model: str, outcome: str) -> None:
        self.by_model[model][outcome] += 1

    def as_dict(self, cache: RenderCache) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_model": {m: dict(c) for m, c in self.by_model.items()},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "render_cache": {"hits": cache.hits, "misses": cache.misses},
        }


class Emulator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.initial_faults = FaultRates(**settings.faults.as_dict())
        self.faults = FaultInjector(settings.faults, settings.seed)
        self.stats = Stats()
        self.chain: credentials.TestChain | None = None
        signer = None
        if settings.c2pa:
            self.chain = (
                credentials.load_chain(settings.c2pa_cert, settings.c2pa_key)
                if settings.c2pa_cert and settings.c2pa_key
                else credentials.make_test_chain()
            )
            signer = credentials.PngSigner(self.chain).sign
            if settings.c2pa_root_out:
                credentials.write_root(self.chain, settings.c2pa_root_out)
        self.cache = RenderCache(sign=signer)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="render")
        self.jitter_rng = random.Random(settings.seed)
        self.batches = BatchService(self)
        self.calls = CallLog()
        self.request_log = open(settings.request_log, "a") if settings.request_log else None  # noqa: SIM115
        # The last calls' input images (markers.input_digests), for tests of their order.
        self.inputs: deque[dict[str, Any]] = deque(maxlen=2000)
        # The generate calls being answered, so that a reset can abort them.
        self.answering: set[asyncio.Task[Any]] = set()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(_V + r"/models/([^/:]+):generateContent"), self.generate),
            ("POST", re.compile(_V + r"/models/([^/:]+):streamGenerateContent"), self.generate),
            ("GET", re.compile(r"/_emulator/stats"), self.get_stats),
            ("GET", re.compile(r"/_emulator/requests"), self.get_requests),
            ("GET", re.compile(r"/_emulator/inputs"), self.get_inputs),
            ("POST", re.compile(r"/_emulator/reset"), self.reset),
            ("GET", re.compile(r"/_emulator/faults"), self.get_faults),
            ("POST", re.compile(r"/_emulator/faults"), self.set_faults),
            ("DELETE", re.compile(r"/_emulator/faults"), self.clear_faults),
            ("GET", re.compile(r"/_emulator/config"), self.get_config),
            ("POST", re.compile(r"/_emulator/config"), self.set_config),
            ("GET", re.compile(r"/_emulator/health"), self.health),
            ("GET", re.compile(r"/_emulator/c2pa/root\.pem"), self.c2pa_root),
            *self.batches.routes(_V),
        ]

    # --- plumbing -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _shutdown(self, _app: web.Application) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.request_log is not None:
            self.request_log.close()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                try:
                    if not path.startswith("/_emulator/") and not self.batches.is_upload_chunk(
                        request
                    ):
                        self.check_key(request)
                    return await handler(request, *match.groups())
                except core.ApiError as exc:
                    return self.error_response(exc)
        return self.error_response(core.ApiError(404, f"Method not found: {request.method} {path}"))

    def check_key(self, request: web.Request) -> None:
        expected = self.settings.api_key
        if expected is None:
            return
        given = request.headers.get("x-goog-api-key") or request.query.get("key")
        if given != expected:
            raise core.ApiError(
                403,
                "Method doesn't allow unregistered callers (callers without "
                "established identity). Please use API Key or other form of API "
                "consumer identity to call this API."
                if not given
                else "The API key is not valid for this project.",
            )

    @staticmethod
    def error_response(exc: core.ApiError) -> web.Response:
        return web.json_response(exc.body(), status=exc.code, headers=exc.headers)

    def model(self, model_id: str) -> core.EmulatedModel:
        model = MODELS.get(model_id.removeprefix("models/"))
        if model is None:
            raise core.ApiError(
                404,
                f"models/{model_id} is not found for API version v1beta, or is not supported "
                "for generateContent. Call ListModels to see the list of available models.",
            )
        return model

    def rate_limit_error(self) -> core.ApiError:
        delay = self.settings.faults.retry_delay_s
        return core.ApiError(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            details=[
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:g}s"}
            ],
            headers={"Retry-After": str(max(1, round(delay)))},
        )

    def model_latency(self) -> float:
        s = self.settings
        return max(0.0, s.latency + self.jitter_rng.uniform(-s.jitter, s.jitter))

    async def read_json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError as exc:
            raise core.ApiError(400, f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(body, dict):
            raise core.ApiError(400, "Invalid JSON payload received: expected an object.")
        return body

    # --- generateContent ------------------------------------------------------------------

    async def generate(self, request: web.Request, model_id: str) -> web.StreamResponse:
        self.stats.requests += 1
        limit = self.settings.max_concurrency
        if limit and self.stats.in_flight >= limit:
            self.stats.record(model_id.removeprefix("models/"), "error_429_concurrency")
            raise self.rate_limit_error()
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        name = model_id
        task = asyncio.current_task()
        assert task is not None
        self.answering.add(task)
        try:
            model = self.model(model_id)
            name = model.model_id
            outcome, response = await self._generate(request, model)
        except core.ApiError as exc:
            self.stats.record(name, f"error_{exc.code}")
            raise
        finally:
            self.stats.in_flight -= 1
            self.answering.discard(task)
        self.stats.record(name, outcome)
        return response

    async def _generate(
        self, request: web.Request, model: core.EmulatedModel
    ) -> tuple[str, web.StreamResponse]:
        started = time.monotonic()
        body = await self.read_json(request)
        call = self.calls.received(model.model_id, body) if self.settings.record_calls else None
        parsed = core.parse(model, body)
        self._log_inputs(model.model_id, parsed)
        decision = self.faults.decide(parsed.prompt, model=model.model_id)
        latency = self.model_latency() + decision.extra_delay_s
        if decision.error_code == 429:
            raise self.rate_limit_error()
        if decision.error_code in (400, 403, 404):
            raise core.ApiError(decision.error_code)
        if decision.outcome == "html502":
            return "html_502", web.Response(status=502, content_type="text/html", text=_HTML_502)
        render = None
        if decision.error_code is None and decision.outcome is None:
            render = asyncio.ensure_future(
                core.image_response(
                    model,
                    parsed,
                    cache=self.cache,
                    executor=self.executor,
                    seed=self.settings.seed,
                    realistic=self.settings.image_bytes == "realistic",
                )
            )
        await asyncio.sleep(latency)
        if decision.error_code is not None:
            raise core.ApiError(decision.error_code)
        if decision.outcome == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more to say on a dropped connection
        answer = (
            await render if render else core.special_response(model, parsed, decision.outcome or "")
        )
        if "[[newfields" in parsed.prompt:
            answer = core.with_newer_fields(answer, in_parts="[[newfields:parts]]" in parsed.prompt)
        if call is not None:
            self.calls.answered(call, answer)
        model_ms = int((time.monotonic() - started) * 1000)
        self._log_request(parsed.prompt, started, model_ms)
        headers = {"x-emulator-model-time-ms": str(model_ms)}
        outcome = {"block": "blocked", "safety": "image_safety", "noimage": "no_image"}.get(
            decision.outcome or "", "ok"
        )
        if request.path.endswith(":streamGenerateContent"):
            resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b"data: " + core.response_bytes(answer) + b"\r\n\r\n")
            await resp.write_eof()
            return outcome, resp
        return outcome, web.Response(
            body=core.response_bytes(answer), content_type="application/json", headers=headers
        )

    def _log_request(self, prompt: str, started: float, model_ms: int) -> None:
        if self.request_log is None:
            return
        end = time.time()
        line = {
            "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
            "start": round(end - (time.monotonic() - started), 4),
            "end": round(end, 4),
            "model_time_ms": model_ms,
        }
        self.request_log.write(json.dumps(line) + "\n")
        self.request_log.flush()

    def _log_inputs(self, model_id: str, parsed: core.ParsedRequest) -> None:
        """Which input images the call received, in order (`GET /_emulator/inputs`); every
        call that parsed, the ones a fault then failed too."""
        self.inputs.append(
            {
                "model": model_id,
                "prompt_sha256": hashlib.sha256(parsed.prompt.encode()).hexdigest(),
                "prompt": parsed.prompt[:200],
                "inputs": markers.input_digests(parsed.input_images),
                "at": round(time.time(), 4),
            }
        )

    async def get_inputs(self, _request: web.Request) -> web.Response:
        return web.json_response({"requests": list(self.inputs)})

    # --- control endpoints ----------------------------------------------------------------

    async def get_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict(self.cache))

    async def get_requests(self, _request: web.Request) -> web.Response:
        """The last calls' contents as received and the model turns answered (calls.py)."""
        if not self.settings.record_calls:
            raise core.ApiError(
                404,
                "Calls are not recorded: start with --record-calls or POST "
                '/_emulator/config {"record_calls": true}.',
            )
        return web.json_response({"requests": self.calls.as_list()})

    async def reset(self, _request: web.Request) -> web.Response:
        # Calls still being answered belong to what came before (a killed test worker's,
        # say): they are aborted, so the fresh stats count from zero calls in flight.
        stale = list(self.answering)
        for task in stale:
            task.cancel()
        if stale:
            await asyncio.wait(stale, timeout=5)
        self.stats.reset()
        self.calls.clear()
        self.inputs.clear()
        self.faults.reset()
        return web.json_response({"ok": True})

    def faults_view(self) -> dict[str, Any]:
        return {**self.settings.faults.as_dict(), "models": self.faults.models_as_dict()}

    async def get_faults(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults_view())

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        model = body.pop("model", None)
        try:
            if model is None:
                self.settings.faults.update(body)
            elif not isinstance(model, str) or model.removeprefix("models/") not in MODELS:
                raise ValueError(f"unknown model: {model!r}")
            else:
                self.faults.set_model_rates(model.removeprefix("models/"), body)
        except (ValueError, TypeError) as exc:
            raise core.ApiError(400, str(exc)) from exc
        return web.json_response(self.faults_view())

    async def clear_faults(self, _request: web.Request) -> web.Response:
        self.settings.faults.update(self.initial_faults.as_dict())
        self.faults.reset()
        return web.json_response(self.faults_view())

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "latency": s.latency,
            "jitter": s.jitter,
            "batch_step_seconds": s.batch_step_seconds,
            "image_bytes": s.image_bytes,
            "seed": s.seed,
            "max_concurrency": s.max_concurrency,
            "record_calls": s.record_calls,
            "c2pa": self.chain is not None,
        }

    async def get_config(self, _request: web.Request) -> web.Response:
        return web.json_response(self.config())

    async def set_config(self, request: web.Request) -> web.Response:
        body = await self.read_json(request)
        for key in ("latency", "jitter", "batch_step_seconds"):
            if key in body:
                setattr(self.settings, key, float(body[key]))
        if "max_concurrency" in body:
            self.settings.max_concurrency = int(body["max_concurrency"])
        if "record_calls" in body:
            self.settings.record_calls = bool(body["record_calls"])
        if body.get("image_bytes") in ("realistic", "small"):
            self.settings.image_bytes = body["image_bytes"]
        return web.json_response(self.config())

    async def c2pa_root(self, _request: web.Request) -> web.Response:
        """The root CA that signs this emulator's images: add it to a verifier's trust
        anchors to see them as Trusted."""
        if self.chain is None:
            raise core.ApiError(404, "This emulator runs with --no-c2pa: its images carry none.")
        return web.Response(body=self.chain.root_pem, content_type="application/x-pem-file")

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "models": sorted(MODELS)})


_HTML_502 = """<!DOCTYPE html>
<html lang=en><meta charset=utf-8><title>Error 502 (Server Error)!!1</title>
<p><b>502.</b> <ins>That's an error.</ins>
<p>The server encountered a temporary error and could not complete your request.
<p>Please try again in 30 seconds. <ins>That's all we know.</ins></html>
"""


def run(settings: Settings) -> None:
    emulator = Emulator(settings)
    print(f"Gemini emulator on http://{settings.host}:{settings.port}", flush=True)
    web.run_app(
        emulator.app(),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        backlog=1024,
    )
