from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client
from PIL import Image as PILImage

from generation.images import image_upload
from generation.models import Image
from tenants.models import Tenant
from tests.plugins.actors import PASSWORD, Actor


@pytest.fixture(autouse=True)
def webhooks_without_dns(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True  # example.com must not need DNS in tests


def signed_in(actor: Actor, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=actor.user.username, password=PASSWORD)
    return client


def png(color: str = "teal", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def uploaded(tenant: Tenant, color: str = "teal") -> Image:
    return image_upload(tenant=tenant, data=png(color))


def csrf_token(client: Client, url: str) -> str:
    client.get(url)
    return str(client.cookies["csrftoken"].value)
