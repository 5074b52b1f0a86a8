from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class RateLimitHeadersMiddleware:
    """Publishes the `RateLimit-*` headers computed by the API throttle, on every answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        result = getattr(request, "ratelimit", None)
        if result is not None:
            for name, value in result.headers().items():
                response[name] = value
            if not result.allowed:
                response["Retry-After"] = str(result.reset_seconds)
        return response
