from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core import metrics

logger = logging.getLogger("bunch.http")


class RequestMetricsMiddleware:
    """Counts every answered request and its latency by route pattern (bounded: the
    URLconf's patterns, not the paths), method and status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else "unmatched"
        seconds = time.perf_counter() - started
        metrics.http_requests.labels(route, request.method or "", str(response.status_code)).inc()
        metrics.http_request_duration.labels(route).observe(seconds)
        logger.info(
            "%s %s %s",
            request.method,
            route,
            response.status_code,
            extra={
                "event": "http.request",
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        return response
