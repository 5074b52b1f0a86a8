"""Plain values that cross the provider boundary, and the typed errors a provider raises.

No SDK here: the job pipeline, the API and tests depend on these alone. Token usage is the
catalog's unit (`core.catalog.TokenUsage`), shared with billing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from core.catalog import TokenUsage


@dataclass(frozen=True)
class InputImage:
    data: bytes
    mime_type: str


@dataclass(frozen=True)
class ImageRequest:
    tier: str
    prompt: str
    aspect_ratio: str
    image_size: str = "1K"
    input_images: tuple[InputImage, ...] = ()
    # Earlier turns (JSON-serialisable Gemini `Content` dicts) for multi-turn editing.
    history: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    mime_type: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageResult:
    images: list[GeneratedImage]
    usage: TokenUsage
    model: str
    model_version: str
    response_id: str
    finish_reason: str
    model_time_ms: int | None
    # The conversation so far (earlier turns + this user turn + the model turn) as the
    # provider's own objects, turned into JSON only when `history` is read: that re-encodes
    # the image as base64, which a one-shot job never needs.
    turns: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @functools.cached_property
    def history(self) -> tuple[dict[str, Any], ...]:
        """The conversation as JSON, thought signatures kept verbatim: pass it back as
        `ImageRequest.history` to edit further."""
        return tuple(turn.model_dump(mode="json", exclude_none=True) for turn in self.turns)


class ProviderError(Exception):
    """A failed provider call, with a stable code a tenant can be shown."""

    retryable: bool = False

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.http_status = http_status


class RetryableProviderError(ProviderError):
    """Trying again later can help: rate_limited, provider_unavailable, provider_timeout,
    provider_connection_error."""

    retryable = True


class PermanentProviderError(ProviderError):
    """The same request will fail again: invalid_argument, permission_denied, model_not_found,
    prompt_blocked, image_refused, no_image, provider_error."""

    retryable = False
