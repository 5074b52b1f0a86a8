"""Series: helpers to upload references, submit a series and read what the emulator got."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
from typing import Any

from PIL import Image as PILImage

from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator

SERIES = "/api/v1/series"


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def upload(actor: Actor, colour: tuple[int, int, int]) -> dict[str, Any]:
    """An uploaded reference image: its id and the SHA-256 of its bytes."""
    data = png(colour)
    response = actor.api().post("/api/v1/images", {"file": io.BytesIO(data)}, format="multipart")
    assert response.status_code == 201, response.content
    return {"id": response.json()["id"], "sha256": hashlib.sha256(data).hexdigest()}


def submit(actor: Actor, expect: int = 202, **body: Any) -> dict[str, Any]:
    response = actor.api().post(SERIES, body, format="json")
    assert response.status_code == expect, response.content
    return dict(response.json())


def get_series(actor: Actor, series_id: str) -> dict[str, Any]:
    response = actor.api().get(f"{SERIES}/{series_id}")
    assert response.status_code == 200, response.content
    return dict(response.json())


def frames(n: int, text: str = "the fox in scene") -> list[dict[str, str]]:
    return [{"prompt": f"{text} {i}"} for i in range(n)]


def emulator_calls(gemini: GeminiEmulator) -> list[dict[str, Any]]:
    """Every generateContent call since the test began, oldest first, with its inputs."""
    with urllib.request.urlopen(gemini.base_url + "/_emulator/inputs", timeout=10) as answer:
        return list(json.loads(answer.read())["requests"])


def image_sha256(actor: Actor, image: dict[str, Any]) -> str:
    return str(image["sha256"])
