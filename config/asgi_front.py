"""The web process's ASGI application: one thread hop for an ordinary request, the event
loop only for requests that wait.

Django's ASGI handler runs a sync view in a new thread per request and hands over to it,
and back, several times (the `request_started` receivers, the view, the response's
close): measured, +57 % web CPU per submit and −12 % submits/s at concurrency 80 against
gunicorn's threaded WSGI workers, and every hand-over is a wait for the GIL while the
process is busy. So only requests that wait go through it: a submit with
`Prefer: wait` and an event stream (`…/events`), whose async views
(`generation.streams`) await the job's news without holding a thread. Every other
request runs whole, middleware and view, in one thread of a pool of the process's sync
slots (`config.slots`), as a WSGI server would run it.

Every request is stamped with the moment it reached the process (`ARRIVED_AT` in the
scope), before its body is read or a slot is free: a wait's deadline counts from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.http import HttpRequest
from django.urls import ResolverMatch

from config.middleware import ARRIVED_AT
from config.slots import slots

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def streams(scope: Scope) -> bool:
    """An event stream (`…/events`): Django's async path, whose view streams."""
    return bool(scope["path"].endswith("/events"))


def waits(scope: Scope) -> bool:
    """A POST whose `Prefer` asks to wait (the same test as `generation.streams`)."""
    if scope["method"] != "POST":
        return False
    return any(name == b"prefer" and b"wait" in value for name, value in scope["headers"])


class SyncViewsHandler(WSGIHandler):
    """Django's WSGI handler, but a view that also has a sync form (`sync_view`: the
    plain view inside an async one that only waits when asked) is called as that."""

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        match = super().resolve_request(request)
        plain = getattr(match.func, "sync_view", None)
        if plain is not None:
            match.func = plain
        return match


# (the pending response, its arrival, a step runner) → (status, body, headers that
# change), or None: the pending response's own answer stands
AnswerWait = Callable[[Any, float, Callable[[Callable[[], Any]], Awaitable[Any]]], Awaitable[Any]]


class FrontApplication:
    """`waiting_app` (Django's ASGI handler) serves event streams, and waits when no
    `answer_wait` is given; every other request runs whole in a pool thread. A response
    that leaves a pending wait (`bunch_wait`, a submit with `Prefer: wait`) is then
    finished by `answer_wait` on the event loop (`generation.streams.wait_answer`)."""

    def __init__(
        self,
        waiting_app: Any,
        handler: WSGIHandler,
        threads: int,
        answer_wait: AnswerWait | None = None,
    ) -> None:
        self.waiting_app = waiting_app
        self.handler = handler
        self.answer_wait = answer_wait
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bunch-sync")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.waiting_app(scope, receive, send)
            return
        scope = {**scope, ARRIVED_AT: time.monotonic()}
        waiting = waits(scope)
        if streams(scope) or (waiting and self.answer_wait is None):
            await self.waiting_app(scope, receive, send)
            return
        await self._in_thread(scope, receive, send, waiting)

    async def _in_thread(self, scope: Scope, receive: Receive, send: Send, waiting: bool) -> None:
        limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE
        body = tempfile.SpooledTemporaryFile(max_size=limit)  # noqa: SIM115  (closed in finally)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # gone before it was read: nothing to answer
                body.write(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body.seek(0)
            loop = asyncio.get_running_loop()
            async with slots().step(waiting=waiting):
                status, headers, chunks, pending = await loop.run_in_executor(
                    self.pool, self._respond, _environ(scope, body)
                )
            answer: Any = None
            if pending is not None and self.answer_wait is not None:
                waiting_for = self.answer_wait(pending, scope[ARRIVED_AT], self.step)
                answer = await _unless_gone(waiting_for, receive)
                if answer is GONE:
                    return  # the client left: its wait (and watch) ends now, not at N s
            if answer is not None:  # else the submit's own answer stands
                status, rendered, changed = answer
                names = {b"content-length", *(name for name, _ in changed)}
                headers = [(k, v) for k, v in headers if k not in names]
                headers += [(b"content-length", str(len(rendered)).encode()), *changed]
                chunks = [rendered]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if isinstance(chunks, list):
                await send({"type": "http.response.body", "body": b"".join(chunks)})
                return
            await self._stream(chunks, send, loop)
        finally:
            body.close()

    async def step(self, fn: Callable[[], T]) -> T:
        """One short database step of a waiting request: a slot of the waiting lane and a
        pool thread; the connection is the thread's (a waiter holds none while it waits),
        closed after unless CONN_MAX_AGE keeps it."""

        def run() -> T:
            try:
                return fn()
            finally:
                for conn in connections.all(initialized_only=True):
                    conn.close_if_unusable_or_obsolete()

        async with slots().step(waiting=True):
            return await asyncio.get_running_loop().run_in_executor(self.pool, run)

    def _respond(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], Any, Any]:
        """In a pool thread: the whole request; a body not streamed is read here too."""
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        response = self.handler(environ, start_response)
        status, headers = started
        encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if getattr(response, "streaming", False):
            return int(status[:3]), encoded, response, None
        pending = response if getattr(response, "bunch_wait", None) is not None else None
        try:
            return int(status[:3]), encoded, list(response), pending
        finally:
            response.close()  # request_finished: the thread's connections go back

    async def _stream(self, response: Any, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        """A streamed body (an image, an export): each chunk read in a pool thread."""
        iterator: Iterator[bytes] = iter(response)
        try:
            while True:
                chunk = await loop.run_in_executor(self.pool, next, iterator, None)
                if chunk is None:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await loop.run_in_executor(self.pool, response.close)


GONE = object()


async def _unless_gone(waiting: Awaitable[Any], receive: Receive) -> Any:
    """`waiting`'s result, or GONE (and `waiting` cancelled) if the client disconnects
    first."""
    answer = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(receive())
    try:
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        if gone.result().get("type") == "http.disconnect":
            answer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answer
            return GONE
        return await answer  # (no other message can come after the body)
    finally:
        gone.cancel()


def _latin1(text: str) -> str:
    """WSGI carries a path as its UTF-8 bytes in a latin-1 str (PEP 3333)."""
    return text.encode("utf-8").decode("latin-1")


def _environ(scope: Scope, body: Any) -> dict[str, Any]:
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _latin1(root),
        "PATH_INFO": _latin1(path),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": _Errors(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        ARRIVED_AT: scope[ARRIVED_AT],
    }
    for raw_name, raw_value in scope["headers"]:
        if b"_" in raw_name:  # X_Forwarded_For must not pass for X-Forwarded-For (as gunicorn)
            continue
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        if key in environ:  # a repeated header: one value, as RFC 9110 folds them
            value = f"{environ[key]}{'; ' if key == 'HTTP_COOKIE' else ','}{value}"
        environ[key] = value
    return environ


class _Errors:
    """`wsgi.errors`: Django logs through `logging`, so nothing is written here."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
