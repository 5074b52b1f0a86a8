"""The Gemini adapter: the only module in Bunch that imports google.genai.

One attempt per call; retries belong to `retry.call_with_retries`, so the SDK's own retry is
switched off (attempts=1) rather than stacked under ours.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import certifi
import httpx2
import pydantic
from aiohttp.helpers import get_env_proxy_for_url
from google import genai
from google.genai import errors
from google.genai import types as gt
from PIL import Image
from yarl import URL

from core import metrics
from core.catalog import MODELS, ModelSpec, TokenUsage, get_model
from generation.image_header import declared_size

from .types import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)

MODEL_TIME_HEADER = "x-emulator-model-time-ms"
REFUSAL_REASONS = frozenset(
    {
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
    }
)
_UNAVAILABLE_CODES = frozenset({408, 500, 502, 503})
# Google accepts inline batch input up to 20 MB in total; above it, a JSONL file.
INLINE_MAX_BYTES = 20 * 1024 * 1024
# The read buffer the SDK gives its own aiohttp sessions (a 1.9 MB answer in few reads).
_READ_BUFFER_BYTES = 2**22


_tls_contexts: dict[int, ssl.SSLContext] = {}


def _tls_context() -> ssl.SSLContext:
    """The process's TLS context, verifying against the CA bundle the SDK uses by default
    (made after a fork anew: django-q2 forks its workers)."""
    found = _tls_contexts.get(os.getpid())
    if found is None:
        _tls_contexts.clear()
        found = _tls_contexts[os.getpid()] = ssl.create_default_context(cafile=certifi.where())
    return found


class GeminiProvider:
    def __init__(self, api_key: str, base_url: str | None = None, timeout_s: float = 120) -> None:
        self._http_options = gt.HttpOptions(
            api_version="v1beta",
            base_url=base_url,
            timeout=int(timeout_s * 1000),
            retry_options=gt.HttpRetryOptions(attempts=1),
            # One TLS context for every client of the process: the SDK otherwise loads the
            # CA bundle three times per client, 60 ms of CPU, and the runner makes a client
            # per task (docs/performance.md, round 3).
            client_args={"verify": _tls_context()},
            async_client_args={"ssl": _tls_context()},
        )
        self._api_key = api_key
        self._client = self._new_client()

    def _new_client(self) -> genai.Client:
        return genai.Client(api_key=self._api_key, http_options=self._http_options)

    def generate(self, request: ImageRequest) -> ImageResult:
        """One call, no retries; raises a ProviderError subclass on failure."""
        spec, contents, config = _prepare(request)
        with _counted(spec.model_id):
            try:
                response = _parsed(
                    self._client.models.generate_content(
                        model=spec.model_id, contents=contents, config=_online(config)
                    )
                )
            except Exception as exc:
                raise translate_error(exc) from exc
            return _to_result(spec, contents, response)

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[AsyncGeminiSession]:
        """An async client bound to the running event loop; open one per loop.

        Its aiohttp session is ours, not the SDK's default, for one difference: the SDK's
        reads the environment on every request (`trust_env`: a .netrc file and the proxy
        variables, each on a thread of the loop's executor: two thread hops per call, 3 %
        of a worker's GIL time at 400 calls in flight, docs/performance.md round 3). Here
        the proxy is looked up once per session; a .netrc is not read.
        """
        base = self._http_options.base_url or "https://generativelanguage.googleapis.com"
        request_args: dict[str, Any] = dict(self._http_options.async_client_args or {})
        with suppress(LookupError):  # raised when no proxy is configured for the host
            request_args["proxy"], request_args["proxy_auth"] = get_env_proxy_for_url(URL(base))
        connector = aiohttp.TCPConnector(limit=0)  # the SDK's: no limit of its own
        async with aiohttp.ClientSession(
            connector=connector, trust_env=False, read_bufsize=_READ_BUFFER_BYTES
        ) as http:
            options = self._http_options.model_copy(
                update={"aiohttp_client": http, "async_client_args": request_args}
            )
            client = genai.Client(api_key=self._api_key, http_options=options)
            async with client.aio as aclient:
                yield AsyncGeminiSession(aclient)

    def close(self) -> None:
        self._client.close()

    # Batch API: half price, results within 24 h. See "batches" below.

    def create_batch(
        self,
        *,
        tier: str,
        requests: Sequence[tuple[str, ImageRequest]],
        display_name: str,
        inline_max_bytes: int = INLINE_MAX_BYTES,
    ) -> CreatedBatch:
        """One provider batch job of `requests` (key, request), all for the model of `tier`.

        Inline when the requests fit under `inline_max_bytes`, else a JSONL file uploaded
        through the Files API. Raises a ProviderError subclass on failure.
        """
        spec = _spec(tier)
        lines = [{"key": key, "request": _request_json(request)} for key, request in requests]
        jsonl = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        config = gt.CreateBatchJobConfig(display_name=display_name)
        try:
            if len(jsonl.encode()) <= inline_max_bytes:
                src: Any = [_inlined(key, request) for key, request in requests]
                mode = "inline"
            else:
                uploaded = self._client.files.upload(
                    file=io.BytesIO(jsonl.encode()),
                    config=gt.UploadFileConfig(
                        mime_type="application/jsonl", display_name=display_name
                    ),
                )
                src, mode = uploaded.name, "file"
            job = self._client.batches.create(model=spec.model_id, src=src, config=config)
        except Exception as exc:
            raise translate_error(exc) from exc
        return CreatedBatch(name=job.name or "", input_mode=mode)

    def get_batch(self, name: str) -> BatchStatus:
        """The job's state; with every item's result or error once it has succeeded."""
        try:
            job = self._client.batches.get(name=name)
            state = _BATCH_STATES.get(_name(job.state), "pending")
            results = self._batch_results(job) if state == "succeeded" else {}
        except Exception as exc:
            raise translate_error(exc) from exc
        message = job.error.message if job.error is not None and job.error.message else ""
        return BatchStatus(name=name, state=state, results=results, error=message or "")

    def cancel_batch(self, name: str) -> None:
        try:
            self._client.batches.cancel(name=name)
        except Exception as exc:
            raise translate_error(exc) from exc

    def _batch_results(self, job: gt.BatchJob) -> dict[str, ImageResult | ProviderError]:
        spec = _spec_for_model(job.model or "")
        dest = job.dest
        results: dict[str, ImageResult | ProviderError] = {}
        if dest is not None and dest.inlined_responses:
            for item in dest.inlined_responses:
                key = str((item.metadata or {}).get("key", ""))
                if item.error is not None or item.response is None:
                    error = item.error or gt.JobError(code=500, message="No response.")
                    results[key] = _item_error(error.code or 500, error.message or "")
                else:
                    results[key] = _item_result(spec, item.response)
        elif dest is not None and dest.file_name:
            data = self._client.files.download(file=dest.file_name) or b""
            for line in data.decode().splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                key = str(row.get("key", ""))
                if row.get("response") is None:
                    failure = row.get("error") or {}
                    results[key] = _item_error(
                        int(failure.get("code") or 500), str(failure.get("message") or "")
                    )
                else:
                    response = gt.GenerateContentResponse.model_validate(row["response"])
                    results[key] = _item_result(spec, response)
        return results


class AsyncGeminiSession:
    def __init__(self, aclient: Any) -> None:
        self._aclient = aclient

    async def generate(self, request: ImageRequest) -> ImageResult:
        spec, contents, config = _prepare(request)
        with _counted(spec.model_id):
            try:
                response = _parsed(
                    await self._aclient.models.generate_content(
                        model=spec.model_id, contents=contents, config=_online(config)
                    )
                )
            except Exception as exc:
                raise translate_error(exc) from exc
            return _to_result(spec, contents, response)


@contextmanager
def _counted(model_id: str) -> Iterator[None]:
    """Every call counted by outcome and timed, answered or not (core.metrics)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except ProviderError as error:
        outcome = metrics.provider_outcome(error.code)
        raise
    finally:
        metrics.provider_call_duration.labels(model_id).observe(time.perf_counter() - started)
        metrics.provider_calls.labels(model_id, outcome).inc()


# --- batches ----------------------------------------------------------------------------

_BATCH_STATES = {
    "JOB_STATE_UNSPECIFIED": "pending",
    "JOB_STATE_QUEUED": "pending",
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_UPDATING": "running",
    "JOB_STATE_PAUSED": "running",
    "JOB_STATE_CANCELLING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}
BATCH_TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class CreatedBatch:
    name: str  # batches/<id>
    input_mode: str  # inline | file


@dataclass(frozen=True)
class BatchStatus:
    """`state`: pending, running, succeeded, failed, cancelled or expired. `results` (by
    request key) only once succeeded: each an ImageResult or the item's ProviderError."""

    name: str
    state: str
    results: dict[str, ImageResult | ProviderError] = field(default_factory=dict)
    error: str = ""

    @property
    def done(self) -> bool:
        return self.state in BATCH_TERMINAL_STATES


def _spec(tier: str) -> ModelSpec:
    try:
        return get_model(tier)
    except KeyError as exc:
        raise PermanentProviderError("invalid_argument", str(exc.args[0])) from exc


def _spec_for_model(model: str) -> ModelSpec:
    model_id = model.removeprefix("models/")
    for spec in MODELS.values():
        if spec.model_id == model_id:
            return spec
    raise PermanentProviderError("model_not_found", f"Unknown model in batch: {model!r}.")


def _inlined(key: str, request: ImageRequest) -> gt.InlinedRequest:
    _, contents, config = _prepare(request)
    return gt.InlinedRequest(contents=contents, metadata={"key": key}, config=config)


def _request_json(request: ImageRequest) -> dict[str, Any]:
    """The REST form of one request, as a JSONL batch file line carries it."""
    _, contents, config = _prepare(request)
    return {
        "contents": [c.model_dump(mode="json", exclude_none=True, by_alias=True) for c in contents],
        "generationConfig": config.model_dump(mode="json", exclude_none=True, by_alias=True),
    }


def _item_result(
    spec: ModelSpec, response: gt.GenerateContentResponse
) -> ImageResult | ProviderError:
    try:
        return _to_result(spec, [], response)
    except ProviderError as error:
        return error


def _item_error(code: int, message: str) -> ProviderError:
    """A failed batch item, classified as an online call with that HTTP error would be."""
    body = {"error": {"code": code, "message": message, "status": ""}}
    return _api_error(errors.APIError(code, body))


# --- request ----------------------------------------------------------------------------


def _prepare(
    request: ImageRequest,
) -> tuple[ModelSpec, list[gt.Content], gt.GenerateContentConfig]:
    try:
        spec = get_model(request.tier)
    except KeyError as exc:
        raise PermanentProviderError("invalid_argument", str(exc.args[0])) from exc
    parts = [gt.Part.from_bytes(data=i.data, mime_type=i.mime_type) for i in request.input_images]
    parts.append(gt.Part.from_text(text=request.prompt))
    contents = [gt.Content.model_validate_json(json.dumps(turn)) for turn in request.history]
    contents.append(gt.Content(role="user", parts=parts))
    # Earlier turns may hold text; asking for TEXT too lets the model answer in kind.
    modalities = ["TEXT", "IMAGE"] if request.history else ["IMAGE"]
    config = gt.GenerateContentConfig(
        response_modalities=modalities,
        image_config=gt.ImageConfig(
            aspect_ratio=request.aspect_ratio, image_size=request.image_size
        ),
        # The estimate's bound (billing.pricing): the model may not bill more than this.
        # An unknown size is left for the model to refuse with its own 400.
        max_output_tokens=(
            spec.max_output_tokens(request.image_size)
            if request.image_size in spec.image_tokens
            else None
        ),
    )
    return spec, contents, config


def _online(config: gt.GenerateContentConfig) -> gt.GenerateContentConfig:
    """The config of one online call (not of a batch line: these are the SDK's settings,
    not the API's).

    - No automatic function calling: Bunch sends no tools, and the SDK's loop for them cost
      a deep copy of the config per call.
    - No automatic continuation: a call is one billed attempt whose usage Bunch records;
      the SDK would otherwise send follow-up requests, each billed, past the
      `max_output_tokens` bound the estimate was made with.
    - The answer's body as it came (`should_return_http_response`, documented: "the raw HTTP
      response will be returned in the 'sdk_http_response' field"), for `_parsed`.
    """
    return config.model_copy(
        update={
            "automatic_function_calling": _NO_AFC,
            "automatic_continuation": False,
            "should_return_http_response": True,
        }
    )


_NO_AFC = gt.AutomaticFunctionCallingConfig(disable=True)


def _parsed(raw: gt.GenerateContentResponse) -> gt.GenerateContentResponse:
    """The SDK's response model, validated from the answer's JSON in one pass.

    The SDK's own path decodes the 1.9 MB body with the standard `json` module, copies the
    resulting dictionaries into its field names, walks them to drop unknown fields, and then
    validates them (1.4 ms of CPU per image, measured; this path takes 0.75). Here
    pydantic reads the JSON itself, by the fields' camelCase aliases, and ignores fields
    this SDK version does not know, as the SDK's walk does. One difference: Gemini's
    `citationMetadata.citationSources` (the SDK's `citations`) is dropped; Bunch reads no
    citations.
    """
    http = raw.sdk_http_response
    body = (http.body if http else None) or "{}"
    try:
        response = gt.GenerateContentResponse.model_validate_json(body, extra="ignore")
    except pydantic.ValidationError as error:
        # A part with a field this SDK does not know: `Part` has a constructor of its own,
        # which refuses unknown fields whatever the validation's `extra` says. Those are
        # dropped here and the answer validated again (as slow as the SDK's own path).
        if any(e["type"] != "extra_forbidden" for e in error.errors()):
            raise
        data = json.loads(body)
        for candidate in data.get("candidates") or []:
            content = candidate.get("content") or {}
            if content.get("parts"):
                content["parts"] = [
                    {k: v for k, v in part.items() if k in _PART_KEYS} for part in content["parts"]
                ]
        response = gt.GenerateContentResponse.model_validate(data, extra="ignore")
    response.sdk_http_response = gt.HttpResponse(headers=http.headers if http else None)
    return response


# A part's fields, by name and by their JSON (camelCase) alias.
_PART_KEYS = frozenset(
    key for name, info in gt.Part.model_fields.items() for key in (name, info.alias) if key
)


# --- response ---------------------------------------------------------------------------


def _name(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _to_result(
    spec: ModelSpec, contents: list[gt.Content], response: gt.GenerateContentResponse
) -> ImageResult:
    feedback = response.prompt_feedback
    if not response.candidates:
        if feedback is not None and feedback.block_reason:
            reason = _name(feedback.block_reason)
            raise PermanentProviderError(
                "prompt_blocked",
                f"The prompt was blocked by the model's safety filters ({reason}). "
                "Rephrase the prompt and try again.",
            )
        raise PermanentProviderError("no_image", "The model returned no image. Try again.")
    candidate = response.candidates[0]
    finish = _name(candidate.finish_reason)
    images = [
        _image(part.inline_data.data, part.inline_data.mime_type or "image/png")
        for part in (candidate.content.parts or [] if candidate.content else [])
        if not part.thought and part.inline_data is not None and part.inline_data.data
    ]
    if not images:
        if finish in REFUSAL_REASONS:
            raise PermanentProviderError(
                "image_refused",
                f"The model refused to create this image ({finish}). "
                "Change the prompt or the input images and try again.",
            )
        raise PermanentProviderError(
            "no_image",
            f"The model finished ({finish or 'no reason given'}) without returning an image. "
            "Try again, or make the prompt ask for an image more explicitly.",
        )
    turns = [*contents, *([candidate.content] if candidate.content is not None else [])]
    return ImageResult(
        images=images,
        usage=_usage(response.usage_metadata),
        model=spec.model_id,
        model_version=response.model_version or spec.model_id,
        response_id=response.response_id or "",
        finish_reason=finish,
        model_time_ms=_model_time(response),
        turns=tuple(turns),
    )


def _image(data: bytes, mime_type: str) -> GeneratedImage:
    # The size from the header as Pillow reads it, without Pillow's search of its format
    # plugins (2 % of a worker's GIL time at provider concurrency 400); Pillow for others.
    size = declared_size(data)
    if size is None:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
    width, height = size
    return GeneratedImage(data=data, mime_type=mime_type, width=width, height=height)


def _by_modality(details: list[gt.ModalityTokenCount] | None, modality: str) -> int:
    return sum(d.token_count or 0 for d in details or [] if _name(d.modality) == modality)


def _usage(meta: gt.GenerateContentResponseUsageMetadata | None) -> TokenUsage:
    if meta is None:
        return TokenUsage()
    return TokenUsage(
        prompt_tokens=meta.prompt_token_count or 0,
        input_text_tokens=_by_modality(meta.prompt_tokens_details, "TEXT"),
        input_image_tokens=_by_modality(meta.prompt_tokens_details, "IMAGE"),
        output_text_tokens=_by_modality(meta.candidates_tokens_details, "TEXT"),
        output_image_tokens=_by_modality(meta.candidates_tokens_details, "IMAGE"),
        thoughts_tokens=meta.thoughts_token_count or 0,
        total_tokens=meta.total_token_count or 0,
    )


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _model_time(response: gt.GenerateContentResponse) -> int | None:
    http = response.sdk_http_response
    value = _header(http.headers if http else None, MODEL_TIME_HEADER)
    return int(value) if value and value.isdigit() else None


# --- errors -----------------------------------------------------------------------------


def _retry_after(error: errors.APIError) -> float | None:
    body = error.details if isinstance(error.details, dict) else {}
    for detail in (body.get("error") or {}).get("details") or []:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*([\d.]+)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    headers = getattr(error.response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _api_error(error: errors.APIError) -> ProviderError:
    code = error.code
    text = (error.message or "").strip()
    if code == 429:
        return RetryableProviderError(
            "rate_limited",
            "The model provider is rate limiting requests; the image will be retried.",
            retry_after=_retry_after(error),
            http_status=code,
        )
    if code == 504:
        return RetryableProviderError(
            "provider_timeout", "The model provider timed out.", http_status=code
        )
    if code in _UNAVAILABLE_CODES or code >= 500:
        return RetryableProviderError(
            "provider_unavailable",
            f"The model provider is unavailable (HTTP {code}).",
            retry_after=_retry_after(error),
            http_status=code,
        )
    if code == 400:
        return PermanentProviderError(
            "invalid_argument", text or "The request was invalid.", http_status=code
        )
    if code in (401, 403):
        return PermanentProviderError(
            "permission_denied",
            "The model provider refused the API key. Check the key and its project.",
            http_status=code,
        )
    if code == 404:
        return PermanentProviderError(
            "model_not_found", text or "The model was not found.", http_status=code
        )
    return PermanentProviderError(
        "provider_error", text or f"The model provider failed (HTTP {code}).", http_status=code
    )


def translate_error(exc: BaseException) -> ProviderError:
    """Map what the SDK and its HTTP stacks (httpx2 sync, aiohttp async) raise to our errors."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, errors.APIError):
        return _api_error(exc)
    if isinstance(exc, httpx2.TimeoutException | asyncio.TimeoutError | TimeoutError):
        return RetryableProviderError(
            "provider_timeout", "The model provider did not answer in time."
        )
    if isinstance(exc, httpx2.TransportError | aiohttp.ClientError | ConnectionError):
        return RetryableProviderError(
            "provider_connection_error",
            f"The connection to the model provider failed ({type(exc).__name__}).",
        )
    return PermanentProviderError("provider_error", f"Unexpected provider failure: {exc!r}")
