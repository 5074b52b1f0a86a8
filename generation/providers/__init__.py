"""Image model providers. Import the adapter from `generation.providers.gemini`; the plain
types, registry and retry helpers import without google-genai."""

from .registry import MODELS, ModelSpec, get_model, pixel_size
from .retry import async_call_with_retries, call_with_retries
from .types import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    InputImage,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
    TokenUsage,
)

__all__ = [
    "MODELS",
    "GeneratedImage",
    "ImageRequest",
    "ImageResult",
    "InputImage",
    "ModelSpec",
    "PermanentProviderError",
    "ProviderError",
    "RetryableProviderError",
    "TokenUsage",
    "async_call_with_retries",
    "call_with_retries",
    "get_model",
    "pixel_size",
]
