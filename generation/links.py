"""Signed, expiring links to image content, for places that cannot send an API key."""

from __future__ import annotations

from django.core import signing
from django.urls import reverse

SALT = "bunch.image-content"
MAX_AGE_S = 3600


def signed_image_url(image_id: object, variant: str) -> str:
    token = signing.TimestampSigner(salt=SALT).sign(f"{image_id}:{variant}")
    path = reverse(f"api:image-{variant}", kwargs={"image_id": image_id})
    return f"{path}?sig={token}"


def signature_allows(token: str, image_id: object, variant: str) -> bool:
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(token, max_age=MAX_AGE_S)
    except signing.BadSignature:
        return False
    return value == f"{image_id}:{variant}"
