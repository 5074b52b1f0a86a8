"""The OpenAPI schema's shared parts: the one error envelope, on every operation.

Every operation documents the errors it can answer with, each in the envelope of
`config/errors.py`, so that a generated client parses them like any other response.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ApiErrorOut(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable, e.g. `quota_exceeded`.")
    message = serializers.CharField(help_text="For people; may change.")
    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    fields = serializers.DictField(  # type: ignore[assignment]  # a field, not .fields
        child=serializers.JSONField(),
        required=False,
        help_text="Per-field messages on validation errors (lists, nested for nested input).",
    )
    request_id = serializers.CharField(allow_null=True, help_text="Quote it when asking for help.")


class ErrorOut(serializers.Serializer):
    """`{"error": {…}}`: every 4xx and 5xx of the API."""

    error = ApiErrorOut()


ALWAYS = {
    "400": "Invalid input (`validation_error` with `fields`, or a specific code).",
    "401": "No API key, or one that is unknown, revoked or expired.",
    "403": "The key lacks the scope, or the tenant may not do this.",
    "404": "No such object for this tenant.",
    "429": "Rate limited; `Retry-After` says when to retry.",
}
WITH_BODY = {
    "413": "The body is larger than the limit.",
    "415": "The body's Content-Type is not one this operation accepts.",
}
WRITES = {"409": "Conflicts with the object's state or an earlier request."}


class BunchAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the error responses every operation can give."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        errors = dict(ALWAYS)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            errors |= WRITES
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors |= WITH_BODY
        for code, description in errors.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorOut, code, direction=direction)
                responses[code] = {**response, "description": description}
        return dict(sorted(responses.items()))
