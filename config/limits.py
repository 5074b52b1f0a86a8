"""Caps on what one API request may ask the server to hold: body size, JSON depth.

A body is refused on its declared `Content-Length` before a byte of it is read; Django's
`DATA_UPLOAD_MAX_MEMORY_SIZE` stays the backstop for bodies that declare nothing. Uploads
(multipart) have their own cap in the upload check (7 MB an image).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError, ValidationError

from config.errors import error_body

METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 4
METADATA_MAX_KEYS = 64
METADATA_MAX_KEY_CHARS = 64


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


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest: a scalar is 0, `{"a": 1}` is 1. Iterative, so
    a document nested as deep as the parser allows cannot exhaust the stack here."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in _children(node))
    return deepest


def _children(node: dict[str, Any] | list[Any]) -> list[Any]:
    return list(node.values()) if isinstance(node, dict) else node


def _key_count(value: Any) -> int:
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            count += len(node) if isinstance(node, dict) else 0
            stack.extend(_children(node))
    return count


def metadata_problem(value: Any) -> str | None:
    """Why `value` is not acceptable as a job's or batch's metadata, or None."""
    if not isinstance(value, dict):
        return "metadata must be a JSON object."
    if json_depth(value) > METADATA_MAX_DEPTH:
        return f"metadata nests deeper than {METADATA_MAX_DEPTH} levels."
    if _key_count(value) > METADATA_MAX_KEYS:
        return f"metadata has more than {METADATA_MAX_KEYS} keys."
    if any(len(str(k)) > METADATA_MAX_KEY_CHARS for k in value):
        return f"metadata keys are at most {METADATA_MAX_KEY_CHARS} characters."
    if len(json.dumps(value, ensure_ascii=False).encode()) > METADATA_MAX_BYTES:
        return f"metadata must be at most {METADATA_MAX_BYTES:,} bytes of JSON."
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a document nested past Python's recursion limit (`[[[[…`,
    a few kilobytes) is a 400 like any malformed body, not a `RecursionError` and a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document nests too deeply.") from None


class StrictLimit:
    """For `CursorPagination` subclasses: `limit` must be a whole number ≥ 1 (else 400,
    not a silent default); above `max_page_size` it is capped, as documented."""

    page_size: int
    max_page_size: int
    page_size_query_param = "limit"

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValidationError({"limit": ["limit must be a whole number, 1 or more."]})
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)  # type: ignore[misc]
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return list(parameters)


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
