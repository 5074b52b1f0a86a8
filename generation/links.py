"""Signed, expiring links to image content, for places that cannot send an API key."""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.encoding import force_bytes

from config.errors import BunchError

SALT = "bunch.image-content"
MAX_AGE_S = 3600
_MARKER = "00000000-0000-0000-0000-000000000000"  # a UUID that no row has


@functools.lru_cache(maxsize=128)
def _path_parts(name: str, kwarg: str, prefix: str, urlconf: str) -> tuple[str, str] | None:
    path = reverse(name, kwargs={kwarg: _MARKER}, urlconf=urlconf)
    head, marker, tail = path.partition(_MARKER)
    return (head, tail) if marker and _MARKER not in tail else None


class IdPath:
    """`reverse(name, kwargs={kwarg: value})` for UUID values, in a string operation: a
    page of 50 jobs reverses 200 such paths, and Django's `reverse` (the resolver's
    language, prefix and converters, each time) was a fifth of its time. The path around
    the id is reversed once per URL name, script prefix and URLconf; an `IdPath` holds it
    for the current ones (make one per answer, not per process)."""

    def __init__(self, name: str, kwarg: str) -> None:
        self.name, self.kwarg = name, kwarg
        urlconf = get_urlconf() or settings.ROOT_URLCONF
        self.parts = _path_parts(name, kwarg, get_script_prefix(), urlconf)

    def __call__(self, value: object) -> str:
        if self.parts is None:  # pragma: no cover - a pattern that repeats or alters the id
            return reverse(self.name, kwargs={self.kwarg: value})
        return f"{self.parts[0]}{value}{self.parts[1]}"


def id_path(name: str, kwarg: str, value: object) -> str:
    return IdPath(name, kwarg)(value)


class _KeyedSigner(signing.TimestampSigner):
    """`TimestampSigner(salt=SALT)`'s tokens, to the byte, with its HMAC keyed once: Django
    derives the key (a SHA-256 of salt and secret) and keys a new HMAC for every value,
    which was most of the time of signing the 400 links of a page of 200 jobs."""

    def __init__(self) -> None:
        super().__init__(salt=SALT)
        salt = force_bytes(f"{SALT}signer")  # Signer.signature's key salt
        key = hashlib.sha256(salt + force_bytes(self.key)).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def signature(self, value: bytes | str, key: bytes | str | None = None) -> str:
        if key is not None and key != self.key:  # a fallback key, when unsigning
            return super().signature(value, key)
        mac = self._mac.copy()
        mac.update(force_bytes(value))
        return signing.b64_encode(mac.digest()).decode()


class ImageLinks:
    """An answer's image links: the paths and the signer made once for all its images.
    (The signer stamps each link with the time it signs it, as one made per link does.)"""

    def __init__(self) -> None:
        self.signer = _KeyedSigner()
        self.detail = IdPath("api:image-detail", "image_id")
        self._variants = {v: IdPath(f"api:image-{v}", "image_id") for v in ("thumbnail", "content")}

    def signed(self, image_id: object, variant: str) -> str:
        token = self.signer.sign(f"{image_id}:{variant}")
        return f"{self._variants[variant](image_id)}?sig={token}"


def signed_image_url(image_id: object, variant: str) -> str:
    token = signing.TimestampSigner(salt=SALT).sign(f"{image_id}:{variant}")
    return f"{id_path(f'api:image-{variant}', 'image_id', image_id)}?sig={token}"


class LinkRefused(BunchError):
    status = 403


def signature_check(token: str, image_id: object, variant: str) -> None:
    """Pass for a valid link to this image's `variant`; else say what is wrong with it."""
    signer = signing.TimestampSigner(salt=SALT)
    try:
        value = signer.unsign(token, max_age=MAX_AGE_S)
    except signing.SignatureExpired:
        raise LinkRefused(
            f"This signed link has expired (links last {MAX_AGE_S // 60} minutes); read the "
            "image or its job again for a fresh one.",
            code="link_expired",
        ) from None
    except signing.BadSignature:
        value = None
    if value != f"{image_id}:{variant}":
        raise LinkRefused(
            "This signed link is not valid for this image (altered, truncated, or for "
            "another image or variant).",
            code="link_invalid",
        )
