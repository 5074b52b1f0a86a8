from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve

logger = logging.getLogger("django.request")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Gives every request an id, echoed in `X-Request-Id` and in API error bodies."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _VALID_ID.match(incoming) else f"req_{uuid.uuid4().hex}"
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class DesignedErrorPagesMiddleware:
    """With DEBUG on (`make run`), dashboard pages still answer 404, 403 and 500 with the
    designed pages instead of Django's debug pages (which list every URL pattern). The
    traceback of a 500 goes to the log, as in production. Off DEBUG, Django's own
    handlers already render these templates; API paths keep their JSON errors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG and not request.path.startswith("/api/"):
            try:
                resolve(request.path_info)
            except Resolver404:
                # An unknown URL never reaches a view, so process_exception never sees it.
                return render(request, "404.html", status=404)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not settings.DEBUG or request.path.startswith("/api/"):
            return None
        if isinstance(exception, Http404):
            return render(request, "404.html", {"exception": str(exception)}, status=404)
        if isinstance(exception, PermissionDenied):
            return render(request, "403.html", {"exception": str(exception)}, status=403)
        logger.exception("Internal Server Error: %s", request.path)
        return render(request, "500.html", status=500)
