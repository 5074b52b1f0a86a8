"""The real google-genai SDK against the running emulator: formats, limits, faults, triggers."""

from __future__ import annotations

import base64
import functools
import io
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from emulators.gemini.catalog import RATIO_PIXELS_1K

LITE = "gemini-3.1-flash-lite-image"


def sdk(gemini: Any, *, api_key: str | None = None, api_version: str = "v1beta") -> genai.Client:
    return _client(gemini.base_url, api_key or gemini.api_key, api_version)


@functools.cache
def _client(base_url: str, api_key: str, api_version: str) -> genai.Client:
    # Kept alive: a garbage-collected Client closes its HTTP connection pool.
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            api_version=api_version,
            base_url=base_url,
            timeout=30_000,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def image_config(ratio: str = "1:1", size: str = "1K") -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size),
    )


def images(response: types.GenerateContentResponse) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(p.inline_data.data))
        for p in response.parts or []
        if p.inline_data and not p.thought
    ]


def raw_post(gemini: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        gemini.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-goog-api-key": gemini.api_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("ratio", list(RATIO_PIXELS_1K))
def test_lite_returns_exact_1k_pixels_for_every_aspect_ratio(gemini: Any, ratio: str) -> None:
    response = sdk(gemini).models.generate_content(
        model=LITE, contents="a calm lake at dawn", config=image_config(ratio)
    )
    [img] = images(response)
    assert img.format == "PNG"
    assert img.size == RATIO_PIXELS_1K[ratio]


def test_usage_reports_1120_image_tokens_per_1k_image(gemini: Any) -> None:
    response = sdk(gemini).models.generate_content(
        model=LITE, contents="avatar of a smiling astronaut", config=image_config()
    )
    usage = response.usage_metadata
    assert usage is not None
    image_tokens = [
        d.token_count
        for d in usage.candidates_tokens_details or []
        if d.modality == types.MediaModality.IMAGE
    ]
    assert image_tokens == [1120]
    assert usage.prompt_token_count == len("avatar of a smiling astronaut") // 4 + 1
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == LITE
    assert response.response_id
    assert response.sdk_http_response.headers["x-emulator-model-time-ms"].isdigit()


def test_input_images_count_1120_prompt_tokens_each(gemini: Any) -> None:
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(png, "PNG")
    part = types.Part.from_bytes(data=png.getvalue(), mime_type="image/png")
    response = sdk(gemini).models.generate_content(
        model=LITE, contents=[part, part, "make it blue"], config=image_config()
    )
    details = {d.modality: d.token_count for d in response.usage_metadata.prompt_tokens_details}
    assert details[types.MediaModality.IMAGE] == 2 * 1120


@pytest.mark.parametrize(
    ("model", "size", "tokens", "pixels"),
    [
        ("gemini-3.1-flash-image", "512", 747, (512, 512)),
        ("gemini-3.1-flash-image", "2K", 1680, (2048, 2048)),
        ("gemini-3-pro-image", "2K", 1120, (2048, 2048)),
        ("gemini-2.5-flash-image", "1K", 1290, (1024, 1024)),
    ],
)
def test_other_models_size_and_tokens(
    gemini: Any, model: str, size: str, tokens: int, pixels: tuple[int, int]
) -> None:
    response = sdk(gemini).models.generate_content(
        model=model, contents="a red bicycle", config=image_config("1:1", size)
    )
    [img] = images(response)
    assert img.size == pixels
    [detail] = response.usage_metadata.candidates_tokens_details
    assert detail.token_count == tokens


def test_pro_sends_a_thought_image_before_the_signed_final_image(gemini: Any) -> None:
    response = sdk(gemini).models.generate_content(
        model="gemini-3-pro-image", contents="a red bicycle", config=image_config()
    )
    parts = response.parts
    assert parts[0].thought is True
    assert parts[-1].thought is None and parts[-1].thought_signature
    assert response.usage_metadata.thoughts_token_count > 0


def test_output_stops_at_max_output_tokens_thinking_first(gemini: Any) -> None:
    """Thinking and image count against maxOutputTokens; an image that no longer fits is
    not made (MAX_TOKENS), and a text part is cut to the room left."""
    client = sdk(gemini).models

    def generate(max_output: int, modalities: list[str]) -> types.GenerateContentResponse:
        config = types.GenerateContentConfig(
            response_modalities=modalities,
            image_config=types.ImageConfig(aspect_ratio="1:1", image_size="1K"),
            max_output_tokens=max_output,
        )
        return client.generate_content(
            model="gemini-3-pro-image", contents="a red bicycle", config=config
        )

    short = generate(1120, ["IMAGE"])
    fits = generate(1120 + 258 + 3, ["TEXT", "IMAGE"])

    assert short.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert images(short) == []
    assert len(images(fits)) == 1
    usage = fits.usage_metadata
    assert usage.candidates_token_count + usage.thoughts_token_count == 1120 + 258 + 3


@pytest.mark.parametrize(
    ("model", "config", "fragment"),
    [
        (LITE, image_config("1:1", "2K"), "Image size '2K'"),
        (LITE, image_config("1:1", "1k"), "Image size '1k'"),
        (LITE, image_config("7:3"), "Aspect ratio '7:3'"),
        ("gemini-3-pro-image", image_config("1:8"), "Aspect ratio '1:8'"),
        ("gemini-2.5-flash-image", image_config("21:9", "2K"), "Image size"),
    ],
)
def test_unsupported_size_or_ratio_is_400_invalid_argument(
    gemini: Any, model: str, config: types.GenerateContentConfig, fragment: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        sdk(gemini).models.generate_content(model=model, contents="x", config=config)
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert fragment in caught.value.message


def test_more_than_14_input_images_is_400(gemini: Any) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, "PNG")
    parts: list[Any] = [types.Part.from_bytes(data=png.getvalue(), mime_type="image/png")] * 15
    with pytest.raises(errors.ClientError) as caught:
        sdk(gemini).models.generate_content(model=LITE, contents=[*parts, "x"])
    assert caught.value.code == 400


def test_input_over_65536_tokens_is_400(gemini: Any) -> None:
    with pytest.raises(errors.ClientError) as caught:
        sdk(gemini).models.generate_content(model=LITE, contents="word " * 60_000)
    assert caught.value.code == 400
    assert "65536" in caught.value.message


def test_unknown_model_is_404_not_found(gemini: Any) -> None:
    with pytest.raises(errors.ClientError) as caught:
        sdk(gemini).models.generate_content(model="gemini-9-ultra-image", contents="x")
    assert caught.value.code == 404
    assert caught.value.details["error"]["status"] == "NOT_FOUND"


def test_wrong_api_key_is_403_permission_denied(gemini: Any) -> None:
    with pytest.raises(errors.ClientError) as caught:
        sdk(gemini, api_key="wrong").models.generate_content(model=LITE, contents="x")
    assert caught.value.code == 403
    assert caught.value.status == "PERMISSION_DENIED"


def test_api_key_is_also_accepted_as_a_query_parameter(gemini: Any) -> None:
    body = {"contents": [{"parts": [{"text": "a tree"}]}]}
    request = urllib.request.Request(
        f"{gemini.base_url}/v1beta/models/{LITE}:generateContent?key={gemini.api_key}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_v1_and_v1beta_both_serve(gemini: Any) -> None:
    for version in ("v1", "v1beta"):
        response = sdk(gemini, api_version=version).models.generate_content(
            model=LITE, contents="a tree", config=image_config("16:9")
        )
        assert images(response)[0].size == (1376, 768)


@pytest.mark.parametrize("style", ["camel", "snake"])
def test_camel_and_snake_case_keys_are_accepted(gemini: Any, style: str) -> None:
    png = io.BytesIO()
    Image.new("RGB", (40, 40), (0, 0, 255)).save(png, "PNG")
    data = base64.urlsafe_b64encode(png.getvalue()).decode()
    if style == "camel":
        blob = {"inlineData": {"mimeType": "image/png", "data": data}}
        config = {
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "imageConfig": {"aspectRatio": "4:1", "imageSize": "1K"},
            }
        }
    else:
        blob = {"inline_data": {"mime_type": "image/png", "data": data}}
        snake_image = {"aspect_ratio": "4:1", "image_size": "1K"}
        config = {"generation_config": {"response_modalities": ["IMAGE"],
                                        "image_config": snake_image}}  # fmt: skip
    body = {"contents": [{"role": "user", "parts": [blob, {"text": "frame it"}]}], **config}
    status, answer = raw_post(gemini, f"/v1beta/models/{LITE}:generateContent", body)
    assert status == 200
    part = answer["candidates"][0]["content"]["parts"][-1]
    img = Image.open(io.BytesIO(base64.b64decode(part["inlineData"]["data"])))
    assert img.size == (2048, 512)
    assert answer["usageMetadata"]["promptTokensDetails"][1] == {
        "modality": "IMAGE",
        "tokenCount": 1120,
    }


def test_same_prompt_gives_same_image_and_other_prompts_differ(gemini: Any) -> None:
    client = sdk(gemini)
    a1, a2, b = (
        client.models.generate_content(model=LITE, contents=p, config=image_config())
        for p in ("banner 'Summer sale'", "banner 'Summer sale'", "banner 'Winter sale'")
    )
    data = [r.parts[-1].inline_data.data for r in (a1, a2, b)]
    assert data[0] == data[1] != data[2]


def test_edit_returns_an_image_derived_from_the_input(gemini: Any) -> None:
    png = io.BytesIO()
    Image.new("RGB", (300, 300), (220, 20, 20)).save(png, "PNG")
    response = sdk(gemini).models.generate_content(
        model=LITE,
        contents=[types.Part.from_bytes(data=png.getvalue(), mime_type="image/png"), "add a hat"],
        config=image_config(),
    )
    [img] = images(response)
    r, g, b = img.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert r > 150 and g < 90 and b < 90
