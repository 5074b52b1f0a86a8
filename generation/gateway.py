"""The configured image provider (Django settings → the plain adapter)."""

from __future__ import annotations

from django.conf import settings

from generation.providers.gemini import GeminiProvider


def get_provider() -> GeminiProvider:
    return GeminiProvider(
        api_key=settings.GEMINI_API_KEY,
        base_url=settings.GEMINI_BASE_URL or None,
        timeout_s=settings.GEMINI_TIMEOUT_S,
    )
