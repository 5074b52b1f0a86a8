"""generateContent semantics, independent of HTTP: parse, validate, render, answer.

Used by the HTTP handler and by batch jobs alike, so both speak exactly the same format.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import math
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from . import credentials, markers, signatures
from .catalog import (
    INPUT_IMAGE_TOKENS,
    MAX_INPUT_IMAGES,
    MAX_INPUT_TOKENS,
    SIZE_FACTORS,
    EmulatedModel,
    nearest_ratio,
    pixel_size,
)
from .render import RenderCache, RenderSpec, clean_prompt

STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGE_BY_CODE = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission.",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The service is currently unavailable.",
}
PRO_THOUGHT_TOKENS = 258


class ApiError(Exception):
    """An error answered as Google's JSON error body."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.status = STATUS_BY_CODE.get(code, "UNKNOWN")
        self.message = message or MESSAGE_BY_CODE.get(code, "Error.")
        self.details = details or []
        self.headers = headers or {}
        super().__init__(f"{code} {self.status}: {self.message}")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def pick(obj: dict[str, Any] | None, camel: str, default: Any = None) -> Any:
    """Read a key that Google accepts in camelCase or snake_case."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake, default)


def b64decode(data: str) -> bytes:
    text = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "Invalid value: inline data is not valid base64.") from exc


def thought_signature(model: str, image: bytes) -> bytes:
    return signatures.image_signature(model, image)


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


@dataclass
class ParsedRequest:
    prompt: str
    input_images: list[bytes]
    prompt_text_tokens: int
    prompt_image_count: int
    modalities: list[str]
    aspect_ratio: str
    image_size: str
    history_image: bytes | None = None
    max_output_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _image_parts(content: dict[str, Any]) -> list[tuple[bytes, dict[str, Any]]]:
    found = []
    for part in pick(content, "parts", []) or []:
        blob = pick(part, "inlineData")
        if blob and str(pick(blob, "mimeType", "")).startswith("image/"):
            found.append((b64decode(pick(blob, "data", "")), part))
    return found


def _check_signatures(model: EmulatedModel, contents: list[dict[str, Any]]) -> bytes | None:
    """Thinking models need their earlier model parts back with the signatures they sent
    (`signatures.check`). Returns the last image the model made in the history."""
    last_image = None
    for content in contents[:-1]:
        if pick(content, "role") != "model":
            continue
        for data, part in _image_parts(content):
            if not pick(part, "thought"):
                last_image = data
    if model.thinking:
        ok, why = signatures.check(model.model_id, contents, b64decode)
        if not ok:
            raise ApiError(400, why)
    return last_image


def _history_images(contents: list[dict[str, Any]]) -> int:
    return sum(len(_image_parts(c)) for c in contents[:-1] if pick(c, "role") == "model")


def parse(model: EmulatedModel, body: dict[str, Any]) -> ParsedRequest:
    contents = pick(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
    last = contents[-1]
    texts = [p["text"] for p in pick(last, "parts", []) or [] if isinstance(p.get("text"), str)]
    inputs = [data for data, _ in _image_parts(last)]
    all_text = " ".join(
        p["text"]
        for c in contents
        for p in pick(c, "parts", []) or []
        if isinstance(p.get("text"), str)
    )
    image_count = sum(len(_image_parts(c)) for c in contents if pick(c, "role", "user") == "user")
    if image_count > MAX_INPUT_IMAGES:
        raise ApiError(
            400, f"Too many input images: {image_count}. At most {MAX_INPUT_IMAGES} are supported."
        )
    # Images the model made earlier in the conversation are input too (the limit on input
    # images is on the user's).
    image_count_all = image_count + _history_images(contents)
    tokens = text_tokens(all_text) + image_count_all * INPUT_IMAGE_TOKENS
    if tokens > MAX_INPUT_TOKENS:
        raise ApiError(
            400,
            f"The input token count ({tokens}) exceeds the maximum number of tokens "
            f"allowed ({MAX_INPUT_TOKENS}).",
        )
    history_image = _check_signatures(model, contents)
    config = pick(body, "generationConfig") or {}
    image_config = pick(config, "imageConfig") or {}
    modalities = [str(m).upper() for m in (pick(config, "responseModalities") or ["TEXT", "IMAGE"])]
    max_output = pick(config, "maxOutputTokens")
    if max_output is not None and (not isinstance(max_output, int) or max_output < 1):
        raise ApiError(400, "* GenerationConfig.max_output_tokens: must be a positive integer")
    size = pick(image_config, "imageSize") or "1K"
    if size not in SIZE_FACTORS or size not in model.image_tokens:
        supported = ", ".join(model.image_tokens)
        raise ApiError(
            400,
            f"Image size '{size}' is not supported by {model.model_id}. Supported: {supported}.",
        )
    ratio = pick(image_config, "aspectRatio")
    source = inputs[0] if inputs else history_image
    if ratio is None:
        ratio = "1:1"
        if source:
            with Image.open(io.BytesIO(source)) as img:
                ratio = nearest_ratio(img.width, img.height, model.ratios)
    if ratio not in model.ratios:
        raise ApiError(
            400,
            f"Aspect ratio '{ratio}' is not supported by {model.model_id}. "
            f"Supported: {', '.join(model.ratios)}.",
        )
    for data in inputs:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Exception as exc:
            raise ApiError(400, "Unable to process input image. Please retry or report.") from exc
    return ParsedRequest(
        prompt=" ".join(texts),
        input_images=inputs,
        prompt_text_tokens=text_tokens(all_text),
        prompt_image_count=image_count_all,
        modalities=modalities,
        aspect_ratio=ratio,
        image_size=size,
        history_image=history_image,
        max_output_tokens=max_output,
    )


def _usage(
    model: EmulatedModel, req: ParsedRequest, image: bool, text_out: int, thoughts: int = 0
) -> dict[str, Any]:
    prompt_details = [{"modality": "TEXT", "tokenCount": req.prompt_text_tokens}]
    if req.prompt_image_count:
        prompt_details.append(
            {"modality": "IMAGE", "tokenCount": req.prompt_image_count * INPUT_IMAGE_TOKENS}
        )
    prompt_tokens = sum(d["tokenCount"] for d in prompt_details)
    cand_details = []
    if image:
        cand_details.append({"modality": "IMAGE", "tokenCount": model.image_tokens[req.image_size]})
    if text_out:
        cand_details.append({"modality": "TEXT", "tokenCount": text_out})
    cand_tokens = sum(d["tokenCount"] for d in cand_details)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "promptTokensDetails": prompt_details,
        "totalTokenCount": prompt_tokens + cand_tokens + thoughts,
    }
    if cand_details:
        usage["candidatesTokenCount"] = cand_tokens
        usage["candidatesTokensDetails"] = cand_details
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _envelope(model: EmulatedModel, usage: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "usageMetadata": usage,
        "modelVersion": model.model_id,
        "responseId": uuid.uuid4().hex[:22],
    }


def special_response(model: EmulatedModel, req: ParsedRequest, outcome: str) -> dict[str, Any]:
    """Answers for [[block]], [[safety]] and [[noimage]]."""
    if outcome == "block":
        return _envelope(
            model,
            _usage(model, req, False, 0),
            promptFeedback={"blockReason": "PROHIBITED_CONTENT"},
        )
    if outcome == "safety":
        candidate = {
            "content": {"role": "model", "parts": []},
            "finishReason": "IMAGE_SAFETY",
            "index": 0,
        }
        return _envelope(model, _usage(model, req, False, 0), candidates=[candidate])
    text = "I can't create that image, but here is a description of what it would show."
    candidate = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "finishReason": "STOP",
        "index": 0,
    }
    return _envelope(model, _usage(model, req, False, text_tokens(text)), candidates=[candidate])


async def image_response(
    model: EmulatedModel,
    req: ParsedRequest,
    *,
    cache: RenderCache,
    executor: Executor | None,
    seed: int,
    realistic: bool,
) -> dict[str, Any]:
    width, height = pixel_size(req.aspect_ratio, req.image_size)
    source = req.input_images[0] if req.input_images else req.history_image
    spec = RenderSpec(
        model=model.model_id,
        # The drawing depends on the prompt without its [[trigger]] markers, so the cache
        # is keyed on that: prompts that differ only in markers share one render.
        prompt=clean_prompt(req.prompt),
        width=width,
        height=height,
        seed=seed,
        realistic=realistic,
        input_image=source,
        input_digest=hashlib.sha256(source).hexdigest() if source else "",
        with_thought=model.thought_image,
        markers=markers.markers_for(req.input_images).encode(),
    )
    render: Callable[[RenderSpec], Any] = cache.render
    loop = asyncio.get_running_loop()
    rendered = await loop.run_in_executor(executor, render, spec)
    png, png_b64 = rendered.png, None
    variant = credentials.trigger(req.prompt)
    if variant is not None:  # [[c2pa:tampered]] / [[c2pa:none]]: this answer only, not cached
        png = await loop.run_in_executor(executor, variant, rendered.png)
        png_b64 = _b64(png)
    parts: list[dict[str, Any]] = []
    if rendered.thought_png:
        parts.append(
            {
                "inlineData": {"mimeType": "image/png", "data": _b64(rendered.thought_png)},
                "thought": True,
            }
        )
    # Output = thinking + image + text, and Google stops at maxOutputTokens: the thinking
    # comes first, so an image that no longer fits is not made (finish MAX_TOKENS).
    thoughts = PRO_THOUGHT_TOKENS if model.thought_image else 0
    room = req.max_output_tokens if req.max_output_tokens is not None else 1 << 30
    if thoughts + model.image_tokens[req.image_size] > room:
        thoughts = min(thoughts, room)
        candidate = {"content": {"role": "model", "parts": []}, "finishReason": "MAX_TOKENS"}
        return _envelope(model, _usage(model, req, False, 0, thoughts), candidates=[candidate])
    room -= thoughts + model.image_tokens[req.image_size]
    text_out = 0
    if "TEXT" in req.modalities and room > 0:
        text = f"Here is your image: {req.prompt[:80]}"[: room * 4]
        text_out = text_tokens(text)
        parts.append({"text": text})
    image_part: dict[str, Any] = {
        "inlineData": {"mimeType": "image/png", "data": png_b64 or rendered.png_b64}
    }
    parts.append(image_part)
    if model.thinking:
        digest = rendered.png_sha256 if png is rendered.png else hashlib.sha256(png).digest()
        signatures.sign(model.model_id, parts, {len(parts) - 1: digest})
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return _envelope(model, _usage(model, req, True, text_out, thoughts), candidates=[candidate])


def with_newer_fields(body: dict[str, Any], *, in_parts: bool = False) -> dict[str, Any]:
    """[[newfields]]: the answer as a newer API version might send it, with fields that
    no SDK knows yet at each level (in each part too with [[newfields:parts]]), and a
    candidate's citations as Gemini names them."""
    future = {"futureField": {"kind": "not yet in any SDK", "weight": 0.5}}
    candidates = []
    for candidate in body.get("candidates") or []:
        content = candidate.get("content") or {}
        parts = [{**part, **future} if in_parts else part for part in content.get("parts") or []]
        candidates.append(
            {
                **candidate,
                **future,
                "content": {**content, "parts": parts, **future},
                "citationMetadata": {
                    "citationSources": [{"startIndex": 0, "endIndex": 4, "uri": "https://x.test"}]
                },
            }
        )
    usage = {**(body.get("usageMetadata") or {}), **future}
    return {**body, **future, "candidates": candidates, "usageMetadata": usage}


def response_bytes(body: dict[str, Any]) -> bytes:
    """`json.dumps(body).encode()`, with each candidate's large inline data spliced in as
    it is: base64 needs no JSON escaping, and json.dumps scanning 2 MB of it to find that
    out was a third of the emulator's CPU per image."""
    blobs: dict[bytes, str] = {}
    nonce = uuid.uuid4().hex  # no text in the body can be a marker
    candidates = []
    for candidate in body.get("candidates") or []:
        parts = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            data = (part.get("inlineData") or {}).get("data")
            if isinstance(data, str) and len(data) > 4096:
                marker = f"@@inline-data-{nonce}-{len(blobs)}@@"
                blobs[f'"{marker}"'.encode()] = data
                part = {**part, "inlineData": {**part["inlineData"], "data": marker}}
            parts.append(part)
        if "content" in candidate:
            candidate = {**candidate, "content": {**candidate["content"], "parts": parts}}
        candidates.append(candidate)
    out = json.dumps({**body, "candidates": candidates} if candidates else body).encode()
    for marker, data in blobs.items():
        out = out.replace(marker, b'"' + data.encode("ascii") + b'"', 1)
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
