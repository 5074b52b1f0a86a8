"""Signed, expiring links to image content, for places that cannot send an API key."""

from __future__ import annotations

from django.core import signing
from django.urls import reverse

from config.errors import BunchError

SALT = "bunch.image-content"
MAX_AGE_S = 3600


def signed_image_url(image_id: object, variant: str) -> str:
    token = signing.TimestampSigner(salt=SALT).sign(f"{image_id}:{variant}")
    path = reverse(f"api:image-{variant}", kwargs={"image_id": image_id})
    return f"{path}?sig={token}"


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
