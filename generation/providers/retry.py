"""Our retry policy for provider calls (the SDK's own retries are switched off).

Exponential backoff with full jitter, never sooner than the server asked (RetryInfo or
Retry-After), retrying only `RetryableProviderError`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .types import RetryableProviderError

T = TypeVar("T")


def backoff_delay(
    attempt: int,
    error: RetryableProviderError,
    *,
    base_delay: float,
    max_delay: float,
    rand: Callable[[], float],
) -> float:
    """Delay before retry number `attempt` (1-based): jittered exponential, floored by the
    server's suggestion, capped by max_delay unless the server asked for longer."""
    ceiling = min(max_delay, base_delay * 2 ** (attempt - 1))
    delay = ceiling * (0.5 + rand() / 2)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    sleep: Callable[[float], object] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> tuple[T, int]:
    """Run fn until it succeeds or `attempts` are used; returns (result, attempts_used)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn(), attempt
        except RetryableProviderError as error:
            if attempt >= attempts:
                raise
            sleep(
                backoff_delay(attempt, error, base_delay=base_delay, max_delay=max_delay, rand=rand)
            )
    raise ValueError("attempts must be at least 1")


async def async_call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> tuple[T, int]:
    """The async twin of call_with_retries: fn is called anew for each attempt."""
    for attempt in range(1, attempts + 1):
        try:
            return await fn(), attempt
        except RetryableProviderError as error:
            if attempt >= attempts:
                raise
            await sleep(
                backoff_delay(attempt, error, base_delay=base_delay, max_delay=max_delay, rand=rand)
            )
    raise ValueError("attempts must be at least 1")
