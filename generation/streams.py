"""Answers that wait for a job without holding a thread: `Prefer: wait` and event streams.

Each is an async view around a synchronous DRF view. The DRF view authenticates, scopes
to the tenant, validates, submits, and answers exactly as it would alone (errors in the
one JSON shape included); when it leaves a `PendingWait` or a `StreamStart` on the
request, the async view takes over and awaits `generation.live` instead of a thread
polling the row. Database work runs in short synchronous steps that give their
connection back before the next await, so a thousand waiters hold neither threads of a
pool nor database connections.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from config.slots import slots
from generation import live, selectors
from generation.models import Job
from generation.serializers import JobOut
from tenants.models import Tenant

T = TypeVar("T")
AsyncView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]
WAIT_GUARD_S = 0.5  # a wait ends this much before its N s, leaving time to answer
HEARTBEAT_S = 15.0  # an event stream sends a comment this often when nothing happens
LOOK_AGAIN_S = 5.0  # and re-reads its row at least this often (a change nobody announced)


async def in_thread(fn: Callable[[], T], *, held: bool = False) -> T:
    """Run a synchronous database step in the request's thread, in one of the process's
    slots for waiting work (`config.slots`; `held`: in the slot the request holds), then
    release its connection: a waiter must not keep one open while it awaits."""

    def step() -> T:
        try:
            return fn()
        finally:
            for conn in connections.all(initialized_only=True):
                if not conn.in_atomic_block:  # a test's transaction stays its own
                    conn.close()

    run = sync_to_async(step, thread_sensitive=True)
    if held:
        return await run()
    async with slots().step(waiting=True):
        return await run()


def _async_around(
    view: Callable[..., HttpResponse],
    then: Callable[[HttpRequest, HttpResponse, float], Awaitable[HttpResponseBase]],
    waits: Callable[[HttpRequest], bool],
    *,
    plain_when_not_waiting: bool = False,
) -> AsyncView:
    @functools.wraps(view)  # keeps `cls` and `csrf_exempt`, which the schema and CSRF read
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # The deadline of a wait counts from the request's arrival in the process (stamped
        # by config.asgi_front before its body was read), not from its first slot.
        started = getattr(request, "arrived_at", None) or time.monotonic()
        call = functools.partial(view, request, *args, **kwargs)
        if not waits(request):
            async with slots().step(waiting=False):
                return await in_thread(call, held=True)
        response = await in_thread(call)  # a slot of the waiting lane, as each step takes
        return await then(request, response, started)

    # config.middleware.SyncSlotsMiddleware lets it through without a slot
    wrapped.waits_without_slot = True  # type: ignore[attr-defined]
    if plain_when_not_waiting:
        # A request that does not wait runs `view` itself, in one thread, without the
        # event loop (config.asgi_front.SyncViewsHandler).
        wrapped.sync_view = view  # type: ignore[attr-defined]
    return wrapped


# Prefer: wait ---------------------------------------------------------------------------


def job_body(tenant: Tenant, job_id: Any) -> dict[str, Any]:
    return JobOut(selectors.job_get_for_tenant(tenant, job_id)).data  # type: ignore[return-value]


@dataclass(frozen=True)
class PendingWait:
    """Left on the request by a submit that asked to wait (`Prefer: wait=N`)."""

    tenant: Tenant
    job_id: Any
    seconds: int
    # The answer's body once the job has finished or the wait ran out (default: the job;
    # a conversation's turn renders itself, generation/conversations/api.py).
    render: Callable[[], dict[str, Any]] | None = None


def with_wait(view: Callable[..., HttpResponse]) -> AsyncView:
    """`Prefer: wait=N` on a submit: 200 with the finished job by N s, else 202 as ever."""
    return _async_around(view, _answer_when_finished, _asks_to_wait, plain_when_not_waiting=True)


def _asks_to_wait(request: HttpRequest) -> bool:
    return request.method == "POST" and "wait" in request.headers.get("Prefer", "")


async def _answer_when_finished(
    request: HttpRequest, response: HttpResponse, started: float
) -> HttpResponse:
    pending: PendingWait | None = getattr(request, "bunch_wait", None)
    if pending is None or not isinstance(response, Response):
        return response
    body = await _wait_for(pending, started, in_thread, read=pending.render)
    return job_answer(body, response, waited=True)


def job_answer(body: dict[str, Any], response: Response | None = None, *, waited: bool) -> Response:
    """The answer about a job as it is now (the API's and the wait's): 200 once it has
    finished, else 202; `Location` names the job either way; after a wait,
    `Bunch-Served-Model` the model that made its images (another after a fallback)."""
    response = response if response is not None else Response()
    response.data = body
    response.status_code = 200 if body["status"] in Job.FINISHED else 202
    response["Location"] = body["links"]["self"]
    if waited:
        response["Bunch-Served-Model"] = body["served_model"]
    return response


Step = Callable[[Callable[[], Any]], Awaitable[Any]]
AS_SUBMITTED = object()  # `_wait_for`: the job is still as its submit answered


async def wait_answer(
    response: Any, started: float, step: Step
) -> tuple[int, bytes, list[Any]] | None:
    """`Prefer: wait` for `config.asgi_front`: the submit's `response` (a 202 that carries
    its `PendingWait`) already ran whole in a thread; wait on the event loop, then read
    and render the job in one `step` (a pool thread). Returns the status, the body and
    the headers that change; None when the job is still queued as submitted, so the
    submit's own 202 is the answer (no read: a thousand deadlines can fall in a second)."""
    pending: PendingWait = response.bunch_wait

    def read_and_render() -> tuple[dict[str, Any], bytes]:
        read = pending.render or functools.partial(job_body, pending.tenant, pending.job_id)
        body = read()
        media = response.accepted_media_type
        rendered = response.accepted_renderer.render(body, media, response.renderer_context)
        return body, rendered

    found = await _wait_for(pending, started, step, read=read_and_render, unchanged=AS_SUBMITTED)
    if found is AS_SUBMITTED:
        return None
    body, rendered = found
    code = 200 if body["status"] in Job.FINISHED else 202
    return code, rendered, [(b"bunch-served-model", str(body["served_model"]).encode())]


async def _wait_for(
    pending: PendingWait,
    started: float,
    step: Step,
    read: Callable[[], Any] | None = None,
    unchanged: Any = None,
) -> Any:
    """Until the job finishes or the deadline; then `read()` (default: the job's body),
    or `unchanged` if given and the job is still queued, as submitted, with no news."""
    # Stop a moment early: the last read and the answer's way out take time when a
    # thousand deadlines fall in the same second.
    deadline = started + pending.seconds - WAIT_GUARD_S
    key = f"job:{pending.job_id}"
    submitted = live.job_version(Job.Status.QUEUED, 0)
    async with live.watch(key, seen=submitted) as watch:
        status = await _look(watch, pending.job_id, step, first=True)
        news = status != Job.Status.QUEUED
        while status not in Job.FINISHED:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await watch.changed(remaining):
                break
            news = True
            status = await _look(watch, pending.job_id, step)
        if watch.polled:  # the poll read the row: news only if it differs from the submit
            news = watch.seen != submitted
    if not news and unchanged is not None:
        return unchanged
    return await step(read or functools.partial(job_body, pending.tenant, pending.job_id))


async def _look(watch: live.Watch, job_id: Any, step: Step, first: bool = False) -> str:
    """The job's status: the SQLite poll already read its row (and a first look is not
    needed: the poll compares with the submitted state); news by message is only a
    reason to look."""
    if watch.polled:
        return str(Job.Status.QUEUED if first else watch.seen[0])
    return str(await step(functools.partial(_status_of, job_id)))


def _status_of(job_id: Any) -> str:
    return str(Job.objects.filter(pk=job_id).values_list("status", flat=True).first() or "")


# Server-Sent Events ---------------------------------------------------------------------


class Cursor(Protocol):
    """Where a client is in a stream; built from its `Last-Event-ID`."""

    def advance(self, state: Any) -> tuple[list[Event], bool]:
        """The events of `state` the client has not seen, and whether this is the end."""
        ...


@dataclass
class StreamStart:
    """Left on the request by a DRF view that opens an event stream."""

    key: str  # what to watch in `generation.live`
    read: Callable[[], Any]  # a synchronous read of the current state
    cursor: Callable[[str], Cursor]  # Last-Event-ID → cursor


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: Any

    def encode(self) -> bytes:
        data = json.dumps(self.data, cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.type}\ndata: {data}\n\n".encode()


FINAL_ID = "end"


def event_schema(kinds: list[str]) -> dict[str, Any]:
    """The OpenAPI schema of one event of a stream (before OpenAPI 3.2 a `text/event-stream`
    response's schema describes each event): its type, its id, its JSON data."""
    return {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": kinds},
            "id": {
                "type": "string",
                "description": f"Send as `Last-Event-ID` to resume; "
                f"`{FINAL_ID}` on the last event.",
            },
            "data": {"type": "string", "contentMediaType": "application/json"},
            "retry": {"type": "integer", "description": "Reconnect after this many ms."},
        },
        "required": ["event", "id", "data"],
    }


def event_stream(view: Callable[..., HttpResponse]) -> AsyncView:
    """A `text/event-stream` of the state the DRF `view` opened (its `StreamStart`)."""
    return _async_around(view, _stream, lambda request: True)


async def _stream(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponseBase:
    start: StreamStart | None = getattr(request, "bunch_stream", None)
    if start is None or response.status_code != 200:
        return response
    last_id = request.headers.get("Last-Event-ID", "").strip()
    if last_id == FINAL_ID:  # the client saw the end; 204 tells EventSource not to reconnect
        return HttpResponse(status=204)
    cursor = start.cursor(last_id)
    streaming = StreamingHttpResponse(_events(start, cursor), content_type="text/event-stream")
    streaming["Cache-Control"] = "no-cache"
    streaming["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
    return streaming


async def _events(start: StreamStart, cursor: Cursor) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    quiet_since = opened = time.monotonic()
    # A stream ends after BUNCH_EVENTS_MAX_S without its final event; the client comes back
    # with Last-Event-ID (EventSource does so after `retry`), so no connection is endless.
    ends = opened + float(settings.BUNCH_EVENTS_MAX_S)
    async with live.watch(start.key) as watch:
        while True:
            state = await in_thread(start.read)
            events, finished = cursor.advance(state)
            for event in events:
                yield event.encode()
            if finished:
                return
            if events:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_S:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
            if (left := ends - time.monotonic()) <= 0:
                return
            await watch.changed(min(LOOK_AGAIN_S, left))


# A job's events -------------------------------------------------------------------------

_RANK = {Job.Status.QUEUED: 0, Job.Status.RUNNING: 1}


def _rank(status: str) -> int:
    return _RANK.get(status, 2)  # type: ignore[call-overload]


@dataclass
class JobCursor:
    """A client's place in a job's events. An event id is `<status rank>-<images seen>`.

    One `status` event per status the client has not seen, one `image` event per stored
    image (oldest first), and after the last status a `done` event with the whole job.
    """

    rank: int = -1
    images: int = 0
    sent: set[str] = field(default_factory=set)
    resume_skip: int = 0

    @classmethod
    def from_id(cls, last_id: str) -> JobCursor:
        rank, _, images = last_id.partition("-")
        try:
            return cls(rank=int(rank), images=int(images), resume_skip=int(images))
        except ValueError:
            return cls()

    def advance(self, body: dict[str, Any]) -> tuple[list[Event], bool]:
        rank = _rank(body["status"])
        events: list[Event] = []
        if self.rank < rank < 2:
            self.rank = rank
            events.append(self._status(body))
        stored = sorted(body["images"], key=lambda i: (i["created_at"], i["id"]))
        # Resuming: the first `images` (oldest first) were seen before the reconnect.
        for image in stored[self.resume_skip :]:
            if image["id"] not in self.sent:
                self.sent.add(image["id"])
                self.images += 1
                events.append(Event(id=self.id, type="image", data=image))
        self.resume_skip = min(self.resume_skip, len(stored))
        if rank < 2:
            return events, False
        if self.rank < 2:
            self.rank = 2
            events.append(self._status(body))
        events.append(Event(id=FINAL_ID, type="done", data=body))
        return events, True

    @property
    def id(self) -> str:
        return f"{max(self.rank, 0)}-{self.images}"

    def _status(self, body: dict[str, Any]) -> Event:
        return Event(id=self.id, type="status", data={"id": body["id"], "status": body["status"]})


@dataclass
class ProgressCursor:
    """A client's place in the events of something that reports progress as a whole (a
    batch): `status` per status not yet seen, `progress` whenever its progress changed,
    then `done` with the whole body. An event id is `<status rank>-<progress digest>`."""

    rank: int = -1
    digest: str = ""

    @classmethod
    def from_id(cls, last_id: str) -> ProgressCursor:
        rank, _, digest = last_id.partition("-")
        try:
            return cls(rank=int(rank), digest=digest)
        except ValueError:
            return cls()

    def advance(self, body: dict[str, Any]) -> tuple[list[Event], bool]:
        rank = _rank(body["status"])
        events: list[Event] = []
        if self.rank < rank < 2:
            self.rank = rank
            events.append(self._event("status", {"id": body["id"], "status": body["status"]}))
        digest = hashlib.sha256(
            json.dumps(body["progress"], sort_keys=True, cls=JSONEncoder).encode()
        ).hexdigest()[:12]
        if digest != self.digest:
            self.digest = digest
            progress = {"id": body["id"], "status": body["status"], **body["progress"]}
            events.append(self._event("progress", progress))
        if rank < 2:
            return events, False
        if self.rank < 2:
            self.rank = 2
            events.append(self._event("status", {"id": body["id"], "status": body["status"]}))
        events.append(Event(id=FINAL_ID, type="done", data=body))
        return events, True

    def _event(self, kind: str, data: dict[str, Any]) -> Event:
        return Event(id=f"{max(self.rank, 0)}-{self.digest}", type=kind, data=data)
