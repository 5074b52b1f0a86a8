"""Cursor pages that refuse a bad `limit` or `cursor` instead of guessing.

DRF turns `limit=abc`, `0` or `-1` into the default page size and answers a garbage
cursor with 404; a client with a bug then pages forever or thinks the list is gone. A limit
above the page maximum is capped (docs/api.md), not refused.

`next` and `previous` are relative (path and query), like every other link the API gives
(`links`, `url`, `download_url`, `Location`): resolve them against the API's origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from config.errors import BunchError


class StrictCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"
    ordering = "-created_at"

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param or "limit")
        if raw is None:
            return int(self.page_size)
        if not raw.strip().isdigit() or int(raw) < 1:
            message = (
                f"limit must be a whole number, 1 or more (pages hold at most "
                f"{self.max_page_size}; a larger limit is capped)."
            )
            raise BunchError(message, code="invalid_limit", fields={"limit": [message]})
        # Above the maximum is capped, as documented: a client asking for "everything"
        # gets the largest page and a `next` link, not an error.
        return min(int(raw), int(self.max_page_size or 0))

    def encode_cursor(self, cursor: Any) -> str:
        url = urlsplit(super().encode_cursor(cursor))
        return f"{url.path}?{url.query}" if url.query else url.path

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            message = "cursor is not one this list gave out; use the `next` or `previous` link."
            raise BunchError(message, code="invalid_cursor", fields={"cursor": [message]}) from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "default": self.page_size}
                parameter["description"] = (
                    f"Page size (default {self.page_size}); values above "
                    f"{self.max_page_size} are capped at {self.max_page_size}."
                )
        return parameters

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        page: dict[str, Any] = super().get_paginated_response_schema(schema)
        for name in ("next", "previous"):
            page["properties"][name]["format"] = "uri-reference"
            page["properties"][name]["example"] = "/api/v1/…?cursor=cD0yMDI2…"
        return page
