from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.plugins.actors import PASSWORD, Actor


@pytest.fixture(autouse=True)
def dashboard_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.dashboard.urls"


def signed_in(actor: Actor, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=actor.user.username, password=PASSWORD)
    return client
