"""Every route × every role × every surface, generated from the URLconf and `tenants.roles`.

Surfaces: a dashboard page (signed in), the API with the dashboard's session, the API with
a key holding a single scope. Each route declares its action (a page by
`tenant_page(action=…)`, an API view by `required_action` or its method); the map says who
may do it. A refused request is a 403 (on the API with the machine code saying why);
an allowed one is anything but a 403 or a 5xx (ids are made up, so mostly 404 or 400).
A route that declares nothing, and is not listed as public here, fails the test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tenants.models import Membership
from tenants.permissions import HasActiveTenant, view_action
from tenants.roles import ROLES, SCOPES, Action, role_allows, scopes_allow
from tests.plugins.actors import make_actor

# Routes that act for no tenant: sign-in, the favicon, an emailed invitation link, the workspace
# switch (a user's own choice),
# health, the API's schema, Django admin (staff), Stripe's signed webhook in, the API 404.
# Not a tenant's pages: sign-in and its second step, the user's own account settings,
# health and metrics (their own token), the schema, webhooks in.
PUBLIC = re.compile(
    r"^(login/|login/verify/|logout/|switch/|healthz|readyz|metrics|api/schema/|api/docs/"
    r"|billing/stripe/webhook/|\^api/|invitations/<str:token>/|favicon\.ico"
    r"|account/two-factor/)$"
    r"|^(password-reset/|admin/)"
)
METHODS = ("get", "post", "put", "patch", "delete")
CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Route:
    surface: str  # "page" or "api"
    path: str
    method: str
    action: Action


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield prefix + route, pattern.callback


def _concrete(route: str) -> str:
    def fill(match: re.Match[str]) -> str:
        return "987654" if match.group(1) == "int" else str(uuid.uuid4())

    return "/" + CONVERTER.sub(fill, route)


def routes() -> tuple[list[Route], list[str]]:
    found, undeclared = [], []
    for route, callback in _walk(get_resolver().url_patterns):
        if PUBLIC.search(route):
            continue
        view_class = getattr(callback, "view_class", None)
        path = _concrete(route)
        if view_class is not None and route.startswith("api/v1/"):
            if HasActiveTenant not in view_class.permission_classes:
                undeclared.append(route)
            for method in METHODS:
                if hasattr(view_class, method):
                    action = view_action(view_class, method.upper())
                    found.append(Route("api", path, method, action))
        elif hasattr(callback, "bunch_action"):
            for method in ("get", "post"):
                found.append(Route("page", path, method, callback.bunch_action))
        else:
            undeclared.append(route)
    return found, undeclared


ROUTES, UNDECLARED = routes()


def test_every_tenant_route_declares_its_action() -> None:
    assert UNDECLARED == []
    # The map covers what the issue found missing on the API: members and money.
    declared = {(r.surface, r.action) for r in ROUTES}
    for action in (Action.WEBHOOKS_MANAGE, Action.USAGE_READ, Action.BILLING_MANAGE):
        assert ("api", action) in declared
        assert ("page", action) in declared or action == Action.BILLING_MANAGE


def test_every_action_has_a_route_and_a_role_that_may_do_it() -> None:
    assert {r.action for r in ROUTES} == set(Action)
    assert all(role_allows("owner", action) for action in Action)


@pytest.fixture
def actors(tenant_a: Any) -> dict[str, Any]:
    people = {role: make_actor(tenant_a, f"{role}@acme.test", role) for role in ROLES}
    keys = {
        scope: make_actor(tenant_a, f"key-{scope}@acme.test", "member", scopes=[scope])
        for scope in SCOPES
    }
    return {"roles": people, "keys": keys}


def _send(client: Any, route: Route) -> Any:
    call = getattr(client, route.method)
    if route.surface == "api":
        return call(route.path, {}, format="json")
    return call(route.path)


def _check(route: Route, response: Any, allowed: bool, code: str, who: str) -> str | None:
    status = response.status_code
    label = f"{route.surface} {route.method.upper()} {route.path} [{route.action}] as {who}"
    if allowed:
        # Past the permission check, a checkout with no Stripe reachable is a clean 503.
        unreachable = status == 503 and response.json()["error"]["code"] == "billing_unavailable"
        if status == 403 or (status >= 500 and not unreachable):
            return f"{label}: allowed but got {status}"
        return None
    if status != 403:
        return f"{label}: refused but got {status}"
    if route.surface == "api" and response.json()["error"]["code"] != code:
        return f"{label}: refused with {response.json()['error']['code']}, not {code}"
    return None


def test_each_role_is_allowed_exactly_what_the_map_says_on_pages_and_the_api(
    actors: dict[str, Any], settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    wrong = []
    for role, actor in actors["roles"].items():
        client = Client()
        client.force_login(actor.user)
        api = APIClient()
        api.force_login(actor.user)
        for route in ROUTES:
            response = _send(client if route.surface == "page" else api, route)
            allowed = role_allows(role, route.action)
            problem = _check(route, response, allowed, "insufficient_role", role)
            if problem:
                wrong.append(problem)
    assert wrong == []


def test_each_api_key_scope_is_allowed_exactly_what_the_map_says(
    actors: dict[str, Any], settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    wrong = []
    for scope, actor in actors["keys"].items():
        api = actor.api()
        for route in (r for r in ROUTES if r.surface == "api"):
            response = _send(api, route)
            allowed = scopes_allow([scope], route.action)
            problem = _check(route, response, allowed, "insufficient_scope", f"key[{scope}]")
            if problem:
                wrong.append(problem)
    assert wrong == []


def test_a_member_is_refused_webhooks_and_billing_through_the_api_in_words(
    actors: dict[str, Any],
) -> None:
    member = actors["roles"][Membership.Role.MEMBER]
    api = APIClient()
    api.force_login(member.user)

    listed = api.get("/api/v1/webhook-endpoints")
    created = api.post(
        "/api/v1/webhook-endpoints", {"url": "https://example.com/hook"}, format="json"
    )
    usage = api.get("/api/v1/usage")
    invoice = api.get("/api/v1/billing/invoice")

    for response in (listed, created, usage, invoice):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_role"
    assert "Only owners and admins" in listed.json()["error"]["message"]
    assert "see usage and billing" in usage.json()["error"]["message"]


def test_new_keys_get_generate_and_read_only(actors: dict[str, Any], tenant_a: Any) -> None:
    from tenants.services import api_key_create

    issued = api_key_create(tenant=tenant_a, name="default")

    assert sorted(issued.api_key.scopes) == ["generate", "read"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert api.get("/api/v1/usage").status_code == 403
    assert api.get("/api/v1/webhook-endpoints").status_code == 403
    assert api.get("/api/v1/generations").status_code == 200
