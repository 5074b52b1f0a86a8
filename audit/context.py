"""The request being served, so that services can say where an action came from without
every signature carrying it."""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None
)


def current_request() -> HttpRequest | None:
    return _request.get()


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: `REMOTE_ADDR`, or with `BUNCH_TRUSTED_PROXIES` = n the n-th
    address from the right of `X-Forwarded-For` (what the nearest trusted proxy saw)."""
    address = request.META.get("REMOTE_ADDR") or ""
    hops = settings.BUNCH_TRUSTED_PROXIES
    if hops:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
