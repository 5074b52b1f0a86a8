from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from config.middleware import BothModes


class RateLimitHeadersMiddleware(BothModes):
    """Publishes the `RateLimit-*` headers computed by the API throttle, on every answer."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        result = getattr(request, "ratelimit", None)
        if result is not None:
            for name, value in result.headers().items():
                response[name] = value
            if not result.allowed:
                response["Retry-After"] = str(result.reset_seconds)
        return response
