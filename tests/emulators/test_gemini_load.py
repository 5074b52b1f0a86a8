"""Load behaviour: concurrency without blocking, and realistic image sizes."""

from __future__ import annotations

import asyncio
from typing import Any

from generation.providers.gemini import GeminiProvider
from generation.providers.types import ImageRequest


def test_200_requests_are_in_flight_at_once(gemini: Any) -> None:
    gemini.configure(latency=2.0, jitter=0)
    provider = GeminiProvider(api_key=gemini.api_key, base_url=gemini.base_url)

    async def burst() -> None:
        async with provider.async_session() as session:
            request = ImageRequest(tier="lite", prompt="a red kite", aspect_ratio="1:1")
            await asyncio.gather(*(session.generate(request) for _ in range(200)))

    asyncio.run(burst())
    stats = gemini.stats()
    assert stats["max_in_flight"] >= 200
    assert stats["by_model"]["gemini-3.1-flash-lite-image"]["ok"] == 200
    assert stats["in_flight"] == 0


def test_a_reset_aborts_the_calls_still_being_answered_so_stats_start_from_zero(
    gemini: Any,
) -> None:
    """A test's worker killed mid-call leaves its call sleeping in the emulator: the next
    test's reset must not hand it a budget with a slot already taken."""
    gemini.configure(latency=30.0, jitter=0)
    provider = GeminiProvider(api_key=gemini.api_key, base_url=gemini.base_url)

    async def stranded_calls_then_reset() -> list[BaseException | object]:
        async with provider.async_session() as session:
            request = ImageRequest(tier="lite", prompt="a red kite", aspect_ratio="1:1")
            calls = [asyncio.ensure_future(session.generate(request)) for _ in range(3)]
            while gemini.stats()["in_flight"] < 3:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(gemini.reset)
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(stranded_calls_then_reset(), timeout=20))
    assert all(isinstance(outcome, Exception) for outcome in outcomes)
    stats = gemini.stats()
    assert (stats["in_flight"], stats["max_in_flight"], stats["requests"]) == (0, 0, 0)


def test_realistic_images_weigh_about_one_and_a_half_megabytes(gemini: Any) -> None:
    gemini.configure(image_bytes="realistic")
    provider = GeminiProvider(api_key=gemini.api_key, base_url=gemini.base_url)
    result = provider.generate(ImageRequest(tier="lite", prompt="a red kite", aspect_ratio="1:1"))
    assert 1_200_000 < len(result.images[0].data) < 2_000_000


def test_response_bytes_are_the_same_json_as_json_dumps() -> None:
    import base64
    import json
    import os

    from emulators.gemini.core import response_bytes

    image = base64.b64encode(os.urandom(300_000)).decode()
    sketch = base64.b64encode(os.urandom(10_000)).decode()
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": sketch}, "thought": True},
                        {"text": 'Here is your image: "quoted"'},
                        {"text": "@@inline-data-0@@"},
                        {"inlineData": {"mimeType": "image/png", "data": image}},
                    ],
                },
                "finishReason": "STOP",
            },
            {"finishReason": "SAFETY"},
        ],
        "usageMetadata": {"totalTokenCount": 1300},
    }

    assert json.loads(response_bytes(body)) == json.loads(json.dumps(body)) == body
    assert json.loads(response_bytes({"promptFeedback": {"blockReason": "SAFETY"}})) == {
        "promptFeedback": {"blockReason": "SAFETY"}
    }
