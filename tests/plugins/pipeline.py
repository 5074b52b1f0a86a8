"""Run jobs inline (django-q2 sync mode) against the Gemini emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django_q.conf import Conf

from tests.plugins.gemini import GeminiEmulator


@pytest.fixture
def inline_worker(
    gemini: GeminiEmulator, settings: Any, monkeypatch: pytest.MonkeyPatch, transactional_db: None
) -> Iterator[GeminiEmulator]:
    """Enqueued tasks run at once in this process; the app talks to the emulator.

    Faults are set with a short RetryInfo delay so that retry tests stay fast while still
    honouring the delay the server suggests.
    """
    settings.GEMINI_BASE_URL = gemini.base_url
    settings.GEMINI_API_KEY = gemini.api_key
    settings.GEMINI_TIMEOUT_S = 2.0
    settings.BUNCH_PROVIDER_BACKOFF_S = 0.01
    settings.BUNCH_PROVIDER_BACKOFF_MAX_S = 0.05
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    settings.C2PA_TRUST_ANCHORS = str(gemini.c2pa_root)
    monkeypatch.setattr(Conf, "SYNC", True)
    gemini.set_faults(retry_delay_s=0.05)
    yield gemini
