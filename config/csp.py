"""The Content-Security-Policy header: scripts only from our own files, never inline.

Templates carry no inline script or event handler (`data-*` attributes and
`static/dashboard/app.js` do that work); JSON data islands (`json_script`) are not
scripts. Inline `style` attributes remain, so styles allow 'unsafe-inline'.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def policy() -> str:
    images = " ".join(["'self'", "data:", "blob:", *settings.BUNCH_CSP_EXTRA_IMG_SRC])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src {images}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.header = policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.header)
        return response
