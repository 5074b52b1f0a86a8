"""GeminiProvider against the emulator: results, typed errors, retries, concurrency, edits."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from PIL import Image

from generation.providers.gemini import GeminiProvider
from generation.providers.retry import async_call_with_retries, call_with_retries
from generation.providers.types import (
    ImageRequest,
    ImageResult,
    InputImage,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)


def provider(gemini: Any, **kw: Any) -> GeminiProvider:
    return GeminiProvider(api_key=kw.pop("api_key", gemini.api_key), base_url=gemini.base_url, **kw)


def req(prompt: str = "avatar of a smiling astronaut", **kw: Any) -> ImageRequest:
    return ImageRequest(
        tier=kw.pop("tier", "lite"), prompt=prompt, aspect_ratio=kw.pop("ratio", "1:1"), **kw
    )


def png(colour: tuple[int, int, int], size: tuple[int, int] = (200, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def mean_colour(data: bytes) -> tuple[int, int, int]:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return img.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[return-value]


def test_generate_returns_image_usage_and_model_facts(gemini: Any) -> None:
    result = provider(gemini).generate(req(ratio="9:16"))
    [image] = result.images
    assert (image.width, image.height, image.mime_type) == (768, 1376, "image/png")
    assert image.data.startswith(b"\x89PNG")
    assert result.usage.output_image_tokens == 1120
    assert result.usage.input_text_tokens == result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + 1120
    assert result.model == result.model_version == "gemini-3.1-flash-lite-image"
    assert result.finish_reason == "STOP" and result.response_id
    assert result.model_time_ms is not None
    json.dumps(result.history)  # storable as JSON


@pytest.mark.parametrize("marker", ["[[newfields]]", "[[newfields:parts]]"])
def test_an_answer_with_fields_newer_than_the_sdk_still_gives_its_image(
    gemini: Any, marker: str
) -> None:
    """The adapter validates the answer's JSON itself (`gemini._parsed`): fields this SDK
    version does not know are ignored at every level, as the SDK's own parse drops them
    (in a part, whose constructor refuses them, on a second pass)."""
    p = provider(gemini)

    async def run() -> ImageResult:
        async with p.async_session() as session:
            return await session.generate(req(f"a kite {marker}"))

    for result in (p.generate(req(f"a kite {marker}")), asyncio.run(run())):
        [image] = result.images
        assert image.data.startswith(b"\x89PNG") and (image.width, image.height) == (1024, 1024)
        assert result.usage.output_image_tokens == 1120
        assert result.finish_reason == "STOP" and result.model_time_ms is not None
        json.dumps(result.history)


def test_pro_thought_images_are_skipped(gemini: Any) -> None:
    result = provider(gemini).generate(req("a red kite", tier="pro"))
    assert [(i.width, i.height) for i in result.images] == [(1024, 1024)]
    assert result.usage.thoughts_tokens > 0


@pytest.mark.parametrize(
    ("prompt", "error_type", "code", "status"),
    [
        ("x [[fail:429]]", RetryableProviderError, "rate_limited", 429),
        ("x [[fail:500]]", RetryableProviderError, "provider_unavailable", 500),
        ("x [[fail:503]]", RetryableProviderError, "provider_unavailable", 503),
        ("x [[fail:504]]", RetryableProviderError, "provider_timeout", 504),
        ("x [[html502]]", RetryableProviderError, "provider_unavailable", 502),
        ("x [[drop]]", RetryableProviderError, "provider_connection_error", None),
        ("x [[fail:400]]", PermanentProviderError, "invalid_argument", 400),
        ("x [[block]]", PermanentProviderError, "prompt_blocked", None),
        ("x [[safety]]", PermanentProviderError, "image_refused", None),
        ("x [[noimage]]", PermanentProviderError, "no_image", None),
    ],
)
def test_each_fault_maps_to_a_typed_error_sync_and_async(
    gemini: Any, prompt: str, error_type: type[ProviderError], code: str, status: int | None
) -> None:
    p = provider(gemini)
    with pytest.raises(error_type) as caught:
        p.generate(req(prompt))
    assert (caught.value.code, caught.value.http_status) == (code, status)
    assert caught.value.message

    async def run() -> ProviderError:
        async with p.async_session() as session:
            with pytest.raises(error_type) as async_caught:
                await session.generate(req(prompt))
            return async_caught.value

    error = asyncio.run(run())
    assert (error.code, error.http_status) == (code, status)


def test_rate_limit_carries_the_suggested_retry_delay(gemini: Any) -> None:
    gemini.set_faults(rate_429=1.0, retry_delay_s=7)
    with pytest.raises(RetryableProviderError) as caught:
        provider(gemini).generate(req())
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"api_key": "wrong"}, "permission_denied"),
    ],
)
def test_wrong_key_is_permanent_permission_denied(
    gemini: Any, kwargs: dict[str, Any], code: str
) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        provider(gemini, **kwargs).generate(req())
    assert caught.value.code == code and caught.value.http_status == 403


def test_invalid_size_and_too_many_inputs_are_invalid_argument(gemini: Any) -> None:
    p = provider(gemini)
    with pytest.raises(PermanentProviderError) as caught:
        p.generate(req(image_size="2K"))
    assert caught.value.code == "invalid_argument" and "2K" in caught.value.message
    many = tuple(InputImage(png((9, 9, 9), (8, 8)), "image/png") for _ in range(15))
    with pytest.raises(PermanentProviderError) as caught:
        p.generate(req("edit", input_images=many))
    assert caught.value.code == "invalid_argument"


def test_timeout_is_retryable_provider_timeout(gemini: Any) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        provider(gemini, timeout_s=0.3).generate(req("x [[slow:3]]"))
    assert caught.value.code == "provider_timeout"


def test_slow_rate_from_control_endpoint_times_out_async(gemini: Any) -> None:
    gemini.set_faults(slow_rate=1.0, slow_seconds=3)

    async def run() -> None:
        async with provider(gemini, timeout_s=0.3).async_session() as session:
            await session.generate(req())

    with pytest.raises(RetryableProviderError) as caught:
        asyncio.run(run())
    assert caught.value.code == "provider_timeout"


def test_retry_succeeds_after_two_429s_honouring_the_suggested_delay(gemini: Any) -> None:
    gemini.set_faults(retry_delay_s=5)
    slept: list[float] = []
    p = provider(gemini)
    result, attempts = call_with_retries(
        lambda: p.generate(req("banner [[fail:429x2]]")),
        attempts=4,
        base_delay=0.5,
        max_delay=30,
        sleep=slept.append,
        rand=lambda: 0.0,
    )
    assert attempts == 3 and result.images
    assert slept == [5.0, 5.0]
    by_outcome = gemini.stats()["by_model"]["gemini-3.1-flash-lite-image"]
    assert by_outcome == {"error_429": 2, "ok": 1}


def test_async_retry_gives_up_after_the_attempt_limit(gemini: Any) -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async def run() -> None:
        async with provider(gemini).async_session() as session:
            await async_call_with_retries(
                lambda: session.generate(req("x [[fail:503]]")),
                attempts=3,
                base_delay=1,
                max_delay=10,
                sleep=sleep,
                rand=lambda: 1.0,
            )

    with pytest.raises(RetryableProviderError):
        asyncio.run(run())
    assert slept == [1.0, 2.0]


def test_50_async_calls_at_2s_latency_are_all_in_flight_at_once(gemini: Any) -> None:
    gemini.configure(latency=2.0, jitter=0)

    async def run() -> None:
        async with provider(gemini).async_session() as session:
            results = await asyncio.gather(*(session.generate(req(f"kite {i}")) for i in range(50)))
            assert len(results) == 50

    asyncio.run(run())
    # Not one call waited for another: the emulator held all 50 at once.
    assert gemini.stats()["max_in_flight"] == 50


def test_edit_returns_an_image_derived_from_the_input(gemini: Any) -> None:
    source = InputImage(png((30, 200, 40)), "image/png")
    result = provider(gemini).generate(req("make it sunny", ratio="16:9", input_images=(source,)))
    r, g, b = mean_colour(result.images[0].data)
    assert g > 130 and r < 100 and b < 100
    assert result.usage.input_image_tokens == 1120


def test_multi_turn_edit_keeps_history_and_thought_signatures(gemini: Any) -> None:
    p = provider(gemini)
    first = p.generate(req("product mockup of a blue mug", tier="flash"))
    model_turn = first.history[-1]
    assert model_turn["role"] == "model"
    assert any("thought_signature" in part for part in model_turn["parts"])
    history = json.loads(json.dumps(first.history))  # as stored in a database
    second = p.generate(req("now make the background yellow", tier="flash", history=history))
    assert mean_colour(second.images[0].data) != mean_colour(first.images[0].data)
    assert len(second.history) == 4
    assert second.usage.input_text_tokens > first.usage.input_text_tokens


def test_multi_turn_with_a_tampered_signature_is_refused(gemini: Any) -> None:
    p = provider(gemini)
    first = p.generate(req("product mockup of a blue mug", tier="flash"))
    history = json.loads(json.dumps(first.history))
    for part in history[-1]["parts"]:
        part.pop("thought_signature", None)
    with pytest.raises(PermanentProviderError) as caught:
        p.generate(req("make it yellow", tier="flash", history=history))
    assert caught.value.code == "invalid_argument"


def test_unknown_tier_is_invalid_argument(gemini: Any) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        provider(gemini).generate(req(tier="ultra"))
    assert caught.value.code == "invalid_argument"


def test_drop_rate_from_control_endpoint_is_a_retryable_connection_error(gemini: Any) -> None:
    gemini.set_faults(drop_rate=1.0)
    with pytest.raises(RetryableProviderError) as caught:
        provider(gemini).generate(req())
    assert caught.value.code == "provider_connection_error"
    gemini.set_faults(drop_rate=0.0)
    assert provider(gemini).generate(req()).images[0].data.startswith(b"\x89PNG")


def test_clients_made_in_one_process_share_one_tls_context_and_still_answer(gemini: Any) -> None:
    # The runner makes a client per task; each loaded the CA bundle three times (60 ms).
    first, second = provider(gemini), provider(gemini)
    options = [p._http_options for p in (first, second)]
    contexts = {id((o.client_args or {})["verify"]) for o in options}
    contexts |= {id((o.async_client_args or {})["ssl"]) for o in options}
    assert len(contexts) == 1

    async def run() -> int:
        async with second.async_session() as session:
            return len((await session.generate(req())).images)

    assert first.generate(req()).images and asyncio.run(run()) == 1
