"""One error shape for every API error.

    {"error": {"code": "quota_exceeded", "message": "…", "status": 402,
               "fields": {"prompt": ["…"]}, "request_id": "req_…"}}

`code` is stable and machine-readable; `message` is for people; `fields` appears on
validation errors. Services raise `BunchError` subclasses; the API translates them here.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class BunchError(Exception):
    """A failure a client can act on: carries its HTTP status and stable code."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields
        self.headers = headers or {}


class NotFound(BunchError):
    status = 404
    code = "not_found"


class Conflict(BunchError):
    status = 409
    code = "conflict"


def error_body(
    request: HttpRequest | None,
    *,
    status: int,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if fields:
        error["fields"] = fields
    error["request_id"] = getattr(request, "request_id", None)
    return {"error": error}


_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_api_key",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_request",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_error",
}


def _flatten(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {key: _flatten_value(value) for key, value in detail.items()}
    return {"non_field_errors": _flatten_value(detail)}


def _flatten_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _flatten(value)
    if isinstance(value, list):
        return [_flatten_value(v) if isinstance(v, (dict, list)) else str(v) for v in value]
    return [str(value)]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    headers: dict[str, str] = {}
    if isinstance(exc, BunchError):
        body = error_body(
            request, status=exc.status, code=exc.code, message=exc.message, fields=exc.fields
        )
        return Response(body, status=exc.status, headers=exc.headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        code = getattr(exc, "bunch_code", None) or _DRF_CODES.get(type(exc), "bad_request")
        if isinstance(exc, exceptions.ValidationError):
            fields = _flatten(exc.detail)
            message = "The request has invalid fields: " + ", ".join(sorted(fields)) + "."
        else:
            fields = None
            message = str(exc.detail)
        if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait))
        body = error_body(
            request, status=exc.status_code, code=code, message=message, fields=fields
        )
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away (a reset connection, a failover, a restart): nothing the
        # request did is wrong, and retrying it, with the same Idempotency-Key, is safe.
        logger.warning("API request failed on the database: %s", exc)
        body = error_body(
            request,
            status=503,
            code="database_unavailable",
            message="The database did not answer. Retry shortly.",
        )
        return Response(body, status=503, headers={"Retry-After": "1"})
    logger.exception("Unhandled API error", exc_info=exc)
    body = error_body(
        request,
        status=500,
        code="internal_error",
        message="Something went wrong on our side. Retry later; quote the request id if it lasts.",
    )
    return Response(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def json_or_html_404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if request.path.startswith("/api/"):
        body = error_body(request, status=404, code="not_found", message="No such endpoint.")
        return JsonResponse(body, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def json_or_html_500(request: HttpRequest) -> Any:
    if request.path.startswith("/api/"):
        body = error_body(
            request, status=500, code="internal_error", message="Something went wrong on our side."
        )
        return JsonResponse(body, status=500)
    from django.views.defaults import server_error

    return server_error(request)


def _api_error(request: HttpRequest, status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        error_body(request, status=status, code=code, message=message), status=status
    )


def json_or_html_400(request: HttpRequest, exception: Exception | None = None) -> Any:
    """Django's own 400s (a disallowed Host, a body over DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    if request.path.startswith("/api/"):
        return _api_error(request, 400, "bad_request", "The request could not be accepted.")
    from django.views.defaults import bad_request

    return bad_request(request, exception or Exception())


def json_or_html_403(request: HttpRequest, exception: Exception | None = None) -> Any:
    if request.path.startswith("/api/"):
        return _api_error(request, 403, "permission_denied", "You may not do that.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception or PermissionDenied())


def csrf_failure(request: HttpRequest, reason: str = "") -> Any:
    """`CSRF_FAILURE_VIEW`: API clients get the error shape, browsers Django's page. API
    views authenticate by key and are CSRF-exempt; a session request to the API is checked
    by DRF itself, which answers in this shape too."""
    if request.path.startswith("/api/"):
        message = "The CSRF check failed; send the API key as `Authorization: Bearer …`."
        return _api_error(request, 403, "csrf_failed", message)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
