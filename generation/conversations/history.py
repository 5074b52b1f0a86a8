"""A conversation's history as Gemini `Content` dicts, and what it weighs as input.

The history is what the model returned and was sent, kept verbatim (roles, text, thought
flags, `thought_signature`s), with one change: the bytes of an image part that Bunch
stores as an `Image` are replaced by that image's id (`bunch_image_id`), so a ten-turn
conversation does not keep ten base64 copies of images it already has. `expand` puts the
very same bytes back before a call (stored images are never changed), so what reaches
the model is what it sent. Plain Python: no Django, no SDK.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

IMAGE_REF = "bunch_image_id"
# What one input image counts, as Google bills it and as the estimate does.
INPUT_IMAGE_TOKENS = 1120
# The most a call may send (Nano Banana 2 Lite's and the others' context window).
MAX_INPUT_TOKENS = 65_536

History = list[dict[str, Any]]


def _blob(part: Mapping[str, Any]) -> dict[str, Any] | None:
    blob = part.get("inline_data", part.get("inlineData"))
    return blob if isinstance(blob, dict) else None


def parts(history: History) -> Iterator[dict[str, Any]]:
    for content in history:
        for part in content.get("parts") or []:
            if isinstance(part, dict):
                yield part


def decode(data: str) -> bytes:
    """Base64 as the SDK writes it (URL-safe) or as Google answers (standard)."""
    text = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return b""


@dataclass(frozen=True)
class Weight:
    """The input a history adds to a call, counted as the estimate counts input: a token
    per byte of text at most (a token is never shorter than a byte), 1,120 per image."""

    text_tokens: int
    images: int

    @property
    def tokens(self) -> int:
        return self.text_tokens + self.images * INPUT_IMAGE_TOKENS


def weight(history: History) -> Weight:
    text = images = 0
    for part in parts(history):
        if isinstance(part.get("text"), str):
            text += len(part["text"].encode())
        if _blob(part) is not None:
            images += 1
    return Weight(text_tokens=text, images=images)


def texts(history: History) -> list[str]:
    return [p["text"] for p in parts(history) if isinstance(p.get("text"), str)]


def image_ids(history: History) -> list[str]:
    return [str(b[IMAGE_REF]) for p in parts(history) if (b := _blob(p)) and IMAGE_REF in b]


def compact(turns: History, known: Mapping[str, str]) -> History:
    """`turns` with the bytes of each image part whose SHA-256 is in `known` (digest →
    image id) replaced by the id; other parts, signatures included, untouched."""
    out = copy.deepcopy(turns)
    for part in parts(out):
        blob = _blob(part)
        if blob is None or not isinstance(blob.get("data"), str):
            continue
        image_id = known.get(hashlib.sha256(decode(blob["data"])).hexdigest())
        if image_id is not None:
            del blob["data"]
            blob[IMAGE_REF] = image_id
    return out


def expand(history: History, read: Callable[[str], bytes]) -> History:
    """The history as the model is sent it: each image id replaced by its bytes (`read`),
    in URL-safe base64 as google-genai writes them."""
    out = copy.deepcopy(history)
    for part in parts(out):
        blob = _blob(part)
        if blob is not None and IMAGE_REF in blob:
            blob["data"] = base64.urlsafe_b64encode(read(str(blob.pop(IMAGE_REF)))).decode()
    return out
