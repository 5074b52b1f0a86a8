"""OpenAPI post-processing (drf-spectacular): every operation documents the errors it can
answer, in the one error shape (`config/errors.py`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status", "request_id"],
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable."},
                "message": {"type": "string", "description": "For people."},
                "status": {"type": "integer"},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Per-field messages, on validation errors.",
                },
                "request_id": {"type": "string", "nullable": True},
            },
        }
    },
}

ERRORS = {
    "400": "Invalid input: `fields` names what is wrong.",
    "401": "No API key, or one that is unknown, revoked or expired.",
    "402": "The account's billing is not in good standing, or a quota or spend cap is spent.",
    "403": "The key lacks the scope, the plan lacks the feature, or the account is suspended.",
    "404": "No such object in your account (another tenant's objects are absent too).",
    "405": "The path does not take this method.",
    "406": "Only JSON (or the documented file type) can be answered.",
    "409": "A conflict: e.g. an Idempotency-Key reused with another body, a finished job.",
    "413": "The body is larger than this endpoint accepts (1 MB of JSON by default).",
    "415": "Send JSON (or multipart/form-data where a file is uploaded).",
    "429": "Rate limited: wait `Retry-After` seconds (`RateLimit-*` headers say more).",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result


def page_of(serializer: type[serializers.Serializer]) -> serializers.Serializer:
    """The cursor-paginated envelope of a list of `serializer`, for `extend_schema`."""
    name = serializer.__name__.removesuffix("Out").removesuffix("Serializer")
    return inline_serializer(
        name=f"{name}Page",
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


CURSOR = OpenApiParameter("cursor", str, description="From a page's `next` or `previous`.")


def limit_parameter(default: int, maximum: int) -> OpenApiParameter:
    return OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1},
        description=f"Page size, default {default}; values above {maximum} are capped.",
    )
