from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from whitenoise.middleware import WhiteNoiseMiddleware

from core import logcontext

ARRIVED_AT = "bunch.arrived_at"  # set by config.asgi_front in the scope or environ

logger = logging.getLogger("django.request")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class BothModes:
    """A middleware that runs in the server's mode, sync or async: under ASGI, one sync
    middleware would put every request, and every wait, back on a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        self.before(request)
        return self.after(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        self.before(request)
        response = await self.get_response(request)
        return self.after(request, response)

    def before(self, request: HttpRequest) -> None:
        pass

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class RequestIdMiddleware(BothModes):
    """Gives every request an id, echoed in `X-Request-Id` and in API error bodies."""

    def before(self, request: HttpRequest) -> None:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _VALID_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        request.request_id = request_id  # type: ignore[attr-defined]
        # Every log line of this request names it (config/logging.py).
        request.log_token = logcontext.bind(request_id=request_id)  # type: ignore[attr-defined]

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        logcontext.reset(request.log_token)  # type: ignore[attr-defined]
        response["X-Request-Id"] = request.request_id  # type: ignore[attr-defined]
        return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, usable under ASGI: a static file is served from a thread, anything
    else passes straight on (WhiteNoise's own middleware is sync only)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self._prefix = "/" + settings.STATIC_URL.strip("/") + "/"

    def __call__(self, request: HttpRequest) -> Any:
        if not self.is_async:
            return super().__call__(request)
        return self._acall(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self._prefix):
            static_file = await sync_to_async(self._find, thread_sensitive=False)(request)
            if static_file is not None:
                return self.serve(static_file, request)  # type: ignore[no-any-return]
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        return await get_response(request)

    def _find(self, request: HttpRequest) -> Any:
        if self.autorefresh:
            return self.find_file(request.path_info)
        return self.files.get(request.path_info)


class AsyncStreamingMiddleware(BothModes):
    """Under ASGI, a response that streams a file (an image, a static file, an export)
    is read chunk by chunk in a thread; left alone, Django would read it whole into
    memory first (and warn)."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if self.is_async and response.streaming and not response.is_async:  # type: ignore[attr-defined]
            response.streaming_content = _chunks_in_thread(response.streaming_content)  # type: ignore[attr-defined]
        return response


async def _chunks_in_thread(content: Any) -> Any:
    iterator = iter(content)
    take = sync_to_async(lambda: next(iterator, None), thread_sensitive=False)
    try:
        while (chunk := await take()) is not None:
            yield chunk
    finally:
        close = getattr(content, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


class SyncSlotsMiddleware(BothModes):
    """Under ASGI, a request waits on the event loop for one of the process's slots
    (`config.slots`) just before its view runs. A view marked `waits_without_slot`
    (`generation.streams`) takes slots step by step itself, so it is let through."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if self.is_async:  # a view hook only under ASGI: under WSGI the threads are the bound
            self.process_view = self._take_slot

    def before(self, request: HttpRequest) -> None:
        # When the request reached the process (config.asgi_front), else now.
        scope = getattr(request, "scope", None) or request.META
        request.arrived_at = scope.get(ARRIVED_AT) or time.monotonic()  # type: ignore[attr-defined]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        self.before(request)
        try:
            response: HttpResponse = await self.get_response(request)
        finally:
            held = getattr(request, "bunch_slot", None)
            if held is not None:
                held.release()
        return response

    async def _take_slot(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if getattr(view, "waits_without_slot", False):
            return None
        from config.slots import HeldSlot, slots

        held = HeldSlot(slots())
        request.bunch_slot = held  # type: ignore[attr-defined]
        await held.acquire()
        return None


class DesignedErrorPagesMiddleware(BothModes):
    """With DEBUG on (`make run`), dashboard pages still answer 404, 403 and 500 with the
    designed pages instead of Django's debug pages (which list every URL pattern). The
    traceback of a 500 goes to the log, as in production. Off DEBUG, Django's own
    handlers already render these templates; API paths keep their JSON errors."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        if self._unknown(request):
            return render(request, "404.html", status=404)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if self._unknown(request):
            page: HttpResponse = await sync_to_async(render)(request, "404.html", status=404)
            return page
        response: HttpResponse = await self.get_response(request)
        return response

    @staticmethod
    def _unknown(request: HttpRequest) -> bool:
        """An unknown URL never reaches a view, so process_exception never sees it."""
        if not settings.DEBUG or request.path.startswith("/api/"):
            return False
        try:
            resolve(request.path_info)
        except Resolver404:
            return True
        return False

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not settings.DEBUG or request.path.startswith("/api/"):
            return None
        if isinstance(exception, Http404):
            return render(request, "404.html", {"exception": str(exception)}, status=404)
        if isinstance(exception, PermissionDenied):
            return render(request, "403.html", {"exception": str(exception)}, status=403)
        logger.exception("Internal Server Error: %s", request.path)
        return render(request, "500.html", status=500)
