from __future__ import annotations

import logging
import time

from django.http import HttpRequest, HttpResponse

from config.middleware import BothModes
from core import metrics

logger = logging.getLogger("bunch.http")


class RequestMetricsMiddleware(BothModes):
    """Counts every answered request and its latency by route pattern (bounded: the
    URLconf's patterns, not the paths), method and status. Both modes: under ASGI a sync
    middleware would put every request, and every wait, back on a thread."""

    def before(self, request: HttpRequest) -> None:
        request.metrics_started = time.perf_counter()  # type: ignore[attr-defined]

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        seconds = time.perf_counter() - request.metrics_started  # type: ignore[attr-defined]
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else "unmatched"
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
