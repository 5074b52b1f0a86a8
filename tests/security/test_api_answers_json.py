"""Every path under /api/ answers in the JSON error shape, never with an HTML page: every
route of the URLconf × every method × each way of (not) authenticating, plus unknown paths."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.plugins.actors import Actor, assert_error
from tests.security.routes import api_routes

METHODS = ["get", "post", "put", "patch", "delete"]


def _clients(owner: Actor) -> dict[str, Any]:
    # CSRF checks on, as for a real client (the test client skips them by default).
    session = Client(enforce_csrf_checks=True)  # a signed-in browser sending no token
    session.force_login(owner.user)
    key = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {owner.key}")
    wrong = Client(
        enforce_csrf_checks=True, HTTP_AUTHORIZATION="Bearer bk_live_000000000000_not-a-real-key"
    )
    anonymous = Client(enforce_csrf_checks=True)
    return {"api key": key, "no auth": anonymous, "wrong key": wrong, "session": session}


def _is_json(response: Any) -> bool:
    return response["Content-Type"].startswith("application/json")


def test_every_api_route_answers_json_for_every_method_and_credential(owner: Actor) -> None:
    tried, html = 0, []
    for route in api_routes():
        path = route.fill()
        for who, client in _clients(owner).items():
            for method in METHODS:
                response = getattr(client, method)(path, {}, content_type="application/json")
                tried += 1
                if response.status_code >= 400 and not _is_json(response):
                    html.append(f"{method.upper()} {path} as {who}: {response.status_code}")
    assert tried >= 500, tried
    assert html == [], html


@pytest.mark.parametrize("method", METHODS)
def test_an_unknown_api_path_is_a_json_404_with_a_valid_key(owner: Actor, method: str) -> None:
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {owner.key}")
    response = getattr(client, method)(
        "/api/v1/no-such-collection", {"name": "x"}, content_type="application/json"
    )
    assert_error(response, 404, "not_found")


def test_an_unknown_api_path_from_a_signed_in_browser_is_a_json_404_not_a_csrf_page(
    owner: Actor,
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner.user)

    response = browser.post(
        "/api/v1/no-such-collection", {"name": "x"}, content_type="application/json"
    )

    assert_error(response, 404, "not_found")


def test_a_session_post_to_the_api_without_csrf_token_is_a_json_403(owner: Actor) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner.user)

    response = browser.post(
        "/api/v1/generations", {"prompt": "a cat"}, content_type="application/json"
    )

    assert_error(response, 403, "permission_denied")


def test_a_disallowed_host_on_the_api_is_a_json_400(owner: Actor) -> None:
    response = owner.api().get("/api/v1/me", HTTP_HOST="evil.example")
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("path", ["/api/", "/api/v2/generations", "/api/v1/", "/api/v1/me/x"])
def test_unknown_api_paths_are_json_404s_without_credentials(path: str) -> None:
    assert_error(Client().get(path), 404, "not_found")
