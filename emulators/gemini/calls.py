"""What each generateContent call received and answered, kept in memory for tests.

`GET /_emulator/requests` lists the last calls, oldest first: the model, the `contents`
exactly as sent (keys and spelling, text, roles, thought flags and signatures), and the
model turn answered. Inline data is recorded by its SHA-256 and size instead of its base64
(`data` → `dataSha256`, `size`), so that a test can compare images byte for byte without
the emulator holding megabytes per call. Reset with `POST /_emulator/reset`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections import deque
from typing import Any

KEPT = 200


def _bytes(data: str) -> bytes:
    text = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return data.encode()


def describe(contents: Any) -> Any:
    """`contents` as received, each inline `data` replaced by its digest and size."""
    out = copy.deepcopy(contents)
    for content in out if isinstance(out, list) else []:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            if not isinstance(part, dict):
                continue
            for key in ("inlineData", "inline_data"):
                blob = part.get(key)
                if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                    data = _bytes(blob.pop("data"))
                    blob["dataSha256"] = hashlib.sha256(data).hexdigest()
                    blob["size"] = len(data)
    return out


class CallLog:
    def __init__(self, kept: int = KEPT) -> None:
        self._calls: deque[dict[str, Any]] = deque(maxlen=kept)

    def received(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a call as it arrives (refused ones too); returns its entry."""
        entry = {"model": model, "contents": describe(body.get("contents")), "answer": None}
        self._calls.append(entry)
        return entry

    @staticmethod
    def answered(entry: dict[str, Any], response: dict[str, Any]) -> None:
        candidates = response.get("candidates") or []
        content = candidates[0].get("content") if candidates else None
        entry["answer"] = describe([content])[0] if content else None

    def as_list(self) -> list[dict[str, Any]]:
        return list(self._calls)

    def clear(self) -> None:
        self._calls.clear()
