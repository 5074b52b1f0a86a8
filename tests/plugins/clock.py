"""A clock that moves only when a test moves it, for code that takes an injectable clock."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
