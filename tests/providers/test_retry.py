"""The retry helper on its own: which errors it retries and how long it waits."""

from __future__ import annotations

import pytest

from generation.providers.retry import call_with_retries
from generation.providers.types import PermanentProviderError, RetryableProviderError


def failing(errors: list[Exception], value: str = "done"):  # type: ignore[no-untyped-def]
    calls = iter(errors)

    def fn() -> str:
        error = next(calls, None)
        if error is not None:
            raise error
        return value

    return fn


def test_backoff_doubles_with_jitter_and_caps_at_max_delay() -> None:
    slept: list[float] = []
    errors = [RetryableProviderError("provider_unavailable", "x") for _ in range(5)]
    result = call_with_retries(
        failing(list(errors)),
        attempts=6,
        base_delay=1,
        max_delay=5,
        sleep=slept.append,
        rand=lambda: 1.0,
    )
    assert result == ("done", 6)
    assert slept == [1, 2, 4, 5, 5]


def test_retry_after_is_a_floor_even_above_max_delay() -> None:
    slept: list[float] = []
    error = RetryableProviderError("rate_limited", "x", retry_after=40)
    call_with_retries(failing([error]), attempts=2, base_delay=1, max_delay=10, sleep=slept.append)
    assert slept == [40]


def test_permanent_errors_are_not_retried() -> None:
    slept: list[float] = []
    with pytest.raises(PermanentProviderError):
        call_with_retries(
            failing([PermanentProviderError("prompt_blocked", "x")]),
            attempts=5,
            base_delay=1,
            max_delay=5,
            sleep=slept.append,
        )
    assert slept == []


def test_last_retryable_error_is_reraised_at_the_limit() -> None:
    errors = [RetryableProviderError("rate_limited", str(i)) for i in range(3)]
    with pytest.raises(RetryableProviderError, match="2"):
        call_with_retries(
            failing(list(errors)), attempts=3, base_delay=0, max_delay=0, sleep=lambda s: None
        )
