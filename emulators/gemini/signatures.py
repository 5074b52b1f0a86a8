"""Thought signatures, as Gemini 3 image models use them in multi-turn editing.

A model turn's first part after its thoughts and each of its image parts carry a
`thoughtSignature`; a later request that sends the turn back without them, or with one
that does not match, is refused with 400, as Google refuses it. The emulator's signature
is an HMAC of the model and the part's content, so checking needs no state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

_KEY = b"bunch-gemini-emulator"

MISSING = (
    "Function call or image part in a model turn is missing its thought signature, or it "
    "does not match. Send earlier model turns back exactly as they were returned, "
    "thought_signature included."
)


def _get(obj: Any, camel: str) -> Any:
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def image_signature(model: str, image: bytes, *, digest: bytes | None = None) -> bytes:
    """`digest`: the image's SHA-256 when the caller has it (a cached render does)."""
    digest = digest or hashlib.sha256(image).digest()
    return hmac.new(_KEY, model.encode() + digest, "sha256").digest()


def text_signature(model: str, text: str) -> bytes:
    return hmac.new(_KEY, model.encode() + b"text:" + text.encode(), "sha256").digest()


def _signed_indexes(parts: list[Any]) -> list[int]:
    """The parts that carry a signature: the first after any thoughts, every image part."""
    answer = [i for i, p in enumerate(parts) if isinstance(p, dict) and not _get(p, "thought")]
    images = [i for i in answer if _get(parts[i], "inlineData")]
    return sorted(set(answer[:1] + images))


def _expected(model: str, part: dict[str, Any], decode: Callable[[str], bytes]) -> bytes | None:
    blob = _get(part, "inlineData")
    if blob:
        return image_signature(model, decode(str(_get(blob, "data") or "")))
    if isinstance(part.get("text"), str):
        return text_signature(model, part["text"])
    return None


def sign(model: str, parts: list[dict[str, Any]], image_digests: dict[int, bytes]) -> None:
    """Add signatures to an answer's parts in place (`image_digests`: part index → the
    image's SHA-256)."""
    for i in _signed_indexes(parts):
        part = parts[i]
        if i in image_digests:
            signature = image_signature(model, b"", digest=image_digests[i])
        elif isinstance(part.get("text"), str):
            signature = text_signature(model, part["text"])
        else:
            continue
        part["thoughtSignature"] = base64.b64encode(signature).decode("ascii")


def check(
    model: str, contents: list[Any], decode: Callable[[str], bytes]
) -> tuple[bool, str | None]:
    """Whether every signed part of the earlier model turns came back with its signature;
    (False, why) otherwise. The last content is the new user turn: not checked."""
    for content in contents[:-1]:
        if _get(content, "role") != "model":
            continue
        parts = _get(content, "parts") or []
        for i in _signed_indexes(parts):
            expected = _expected(model, parts[i], decode)
            sent = _get(parts[i], "thoughtSignature")
            if expected is not None and (not sent or decode(str(sent)) != expected):
                return False, MISSING
    return True, None
