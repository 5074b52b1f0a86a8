"""GeminiProvider's Batch API calls against the emulator: inline and file input, per-item
errors, cancel, expiry."""

from __future__ import annotations

import time
from typing import Any

import pytest

from generation.providers.gemini import BatchStatus, GeminiProvider
from generation.providers.types import (
    ImageResult,
    InputImage,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from tests.providers.test_gemini_adapter import png, provider, req


def wait_done(adapter: GeminiProvider, name: str, timeout_s: float = 10) -> BatchStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = adapter.get_batch(name)
        if status.done:
            return status
        time.sleep(0.02)  # polling is how the Batch API is used
    raise AssertionError(f"{name} did not finish")


def test_small_batch_goes_inline_and_returns_every_image_by_key(gemini: Any) -> None:
    adapter = provider(gemini)
    created = adapter.create_batch(
        tier="lite",
        requests=[("a", req("banner 'Hola'", ratio="16:9")), ("b", req("avatar of a cat"))],
        display_name="two",
    )
    assert created.name.startswith("batches/") and created.input_mode == "inline"
    status = wait_done(adapter, created.name)

    assert status.state == "succeeded"
    a, b = status.results["a"], status.results["b"]
    assert isinstance(a, ImageResult) and isinstance(b, ImageResult)
    assert (a.images[0].width, a.images[0].height) == (1376, 768)
    assert a.usage.output_image_tokens == 1120
    assert a.model == "gemini-3.1-flash-lite-image"


def test_requests_over_the_inline_limit_go_through_a_jsonl_file(gemini: Any) -> None:
    adapter = provider(gemini)
    edit = req("make it blue", input_images=(InputImage(png((200, 10, 10)), "image/png"),))
    created = adapter.create_batch(
        tier="lite",
        requests=[("plain", req("a mug")), ("edit", edit)],
        display_name="file",
        inline_max_bytes=100,
    )
    assert created.input_mode == "file"
    status = wait_done(adapter, created.name)

    assert status.state == "succeeded"
    assert all(isinstance(r, ImageResult) for r in status.results.values())
    assert set(status.results) == {"plain", "edit"}


@pytest.mark.parametrize("inline_max_bytes", [20 * 1024 * 1024, 10])
def test_failed_items_carry_typed_errors_in_both_modes(gemini: Any, inline_max_bytes: int) -> None:
    adapter = provider(gemini)
    created = adapter.create_batch(
        tier="lite",
        requests=[
            ("ok", req("a tree")),
            ("bad", req("a tree [[fail:400]]")),
            ("busy", req("a tree [[fail:503]]")),
            ("unsafe", req("a tree [[safety]]")),
        ],
        display_name="errors",
        inline_max_bytes=inline_max_bytes,
    )
    results = wait_done(adapter, created.name).results

    assert isinstance(results["ok"], ImageResult)
    bad, busy, unsafe = results["bad"], results["busy"], results["unsafe"]
    assert isinstance(bad, PermanentProviderError) and bad.code == "invalid_argument"
    assert isinstance(busy, RetryableProviderError) and busy.code == "provider_unavailable"
    assert isinstance(unsafe, PermanentProviderError) and unsafe.code == "image_refused"


def test_state_moves_pending_then_running_then_succeeded(gemini: Any) -> None:
    gemini.configure(batch_step_seconds=0.3)
    adapter = provider(gemini)
    name = adapter.create_batch(tier="lite", requests=[("k", req())], display_name="s").name
    seen = [adapter.get_batch(name).state]
    deadline = time.monotonic() + 10
    while seen[-1] != "succeeded" and time.monotonic() < deadline:
        state = adapter.get_batch(name).state
        if state != seen[-1]:
            seen.append(state)
        time.sleep(0.02)
    assert seen == ["pending", "running", "succeeded"]


def test_cancelled_and_expired_batches_end_without_results(gemini: Any) -> None:
    gemini.configure(batch_step_seconds=5)
    adapter = provider(gemini)
    cancelled = adapter.create_batch(tier="lite", requests=[("k", req())], display_name="c").name
    expired = adapter.create_batch(tier="lite", requests=[("k", req())], display_name="e").name

    adapter.cancel_batch(cancelled)
    gemini.expire_batch(expired)

    assert adapter.get_batch(cancelled) == BatchStatus(name=cancelled, state="cancelled")
    assert adapter.get_batch(expired) == BatchStatus(name=expired, state="expired")


def test_unknown_batch_and_bad_key_raise_typed_errors(gemini: Any) -> None:
    with pytest.raises(ProviderError) as missing:
        provider(gemini).get_batch("batches/nope")
    assert missing.value.code == "model_not_found" and not missing.value.retryable
    with pytest.raises(PermanentProviderError) as denied:
        provider(gemini, api_key="wrong").create_batch(
            tier="lite", requests=[("k", req())], display_name="x"
        )
    assert denied.value.code == "permission_denied"
