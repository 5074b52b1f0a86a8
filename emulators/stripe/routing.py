"""A tiny route table: API handlers are plain synchronous functions, so each runs atomically
on the event loop and the store never sees a half-applied write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# handler(emulator, params, **path_args) -> the response object
Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler


class Routes:
    def __init__(self) -> None:
        self.items: list[Route] = []

    def _add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.items.append(Route(method, path, handler))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("POST", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("DELETE", path)
