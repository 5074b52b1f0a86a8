"""Caps on what one API request may ask the server to hold: body size, JSON depth.

A body is refused on its declared `Content-Length` before a byte of it is read; Django's
`DATA_UPLOAD_MAX_MEMORY_SIZE` stays the backstop for bodies that declare nothing. Uploads
(multipart) have their own cap in the upload check (7 MB an image).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError

from config.errors import error_body


def body_limit(request: HttpRequest) -> int | None:
    """The most bytes a body sent to this path may have; None: no cap here."""
    if not request.path.startswith("/api/"):
        return None
    if request.content_type == "multipart/form-data":
        return None
    for prefix, limit in settings.BUNCH_API_BODY_LIMITS.items():
        if request.path.startswith(prefix):
            return int(limit)
    return int(settings.BUNCH_API_MAX_BODY_BYTES)


class BodySizeLimitMiddleware:
    """413 in the API's error shape for a body larger than its path allows."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = body_limit(request)
        if limit is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                return _too_large(request, declared, limit)
        return self.get_response(request)


def _too_large(request: HttpRequest, declared: int, limit: int) -> JsonResponse:
    message = (
        f"The request body is {declared:,} bytes; this endpoint accepts at most {limit:,}. "
        "Send fewer items per request."
    )
    body = error_body(request, status=413, code="request_too_large", message=message)
    return JsonResponse(body, status=413)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a document nested past Python's recursion limit (`[[[[…`,
    a few kilobytes) is a 400 like any malformed body, not a `RecursionError` and a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document nests too deeply.") from None


def strict_json_strings() -> None:
    """A string field takes a JSON string only. DRF's `CharField` also turns numbers into
    strings (`"prompt": 0` became "0"), which the schema does not allow; the bodies of
    this API are JSON, so nothing legitimate sends a number there. Called once, from
    `TenantsConfig.ready`."""
    if getattr(serializers.CharField, "_bunch_strict", False):
        return
    lenient = serializers.CharField.to_internal_value

    def to_internal_value(self: serializers.CharField, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return lenient(self, data)  # type: ignore[no-any-return]

    serializers.CharField.to_internal_value = to_internal_value  # type: ignore[method-assign, assignment]
    serializers.CharField._bunch_strict = True  # type: ignore[attr-defined]
