"""Every route of the URLconf, walked rather than listed, with its path parameters filled:
a new route is covered by the tests built on this without anyone adding it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    template: str  # "/api/v1/generations/<str:job_id>"
    name: str
    callback: object

    @property
    def params(self) -> list[str]:
        return [m.group("name") for m in _PARAM.finditer(self.template)]

    def fill(self, **values: object) -> str:
        """The path with each parameter replaced by `values[name]` or a fresh id."""

        def one(match: re.Match[str]) -> str:
            name, converter = match.group("name"), match.group("converter") or "str"
            if name in values:
                return str(values[name])
            return str(uuid.uuid4()) if converter in ("str", "uuid") else "987654321"

        return _PARAM.sub(one, self.template)


def _walk(patterns: list[URLPattern | URLResolver], prefix: str, ns: str) -> Iterator[Route]:
    for entry in patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{ns}{entry.namespace}:" if entry.namespace else ns
            yield from _walk(entry.url_patterns, prefix + route, inner)
        else:
            yield Route("/" + prefix + route, ns + (entry.name or ""), entry.callback)


def all_routes() -> list[Route]:
    seen: dict[str, Route] = {}
    for route in _walk(get_resolver().url_patterns, "", ""):
        seen.setdefault(route.template, route)
    return list(seen.values())


def api_routes() -> list[Route]:
    """Routes under /api/v1/ (the schema and its HTML viewer are documents, not API)."""
    return [r for r in all_routes() if r.template.startswith("/api/v1/")]
