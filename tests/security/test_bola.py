"""Object-level authorisation over every route, the matrix built from the URLconf: each
route with an object id called as another tenant, as a member where owners/admins are
required, with a revoked key and with a key lacking the scope; signed download links;
privileged fields sent in bodies (mass assignment)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from batches.drafts import draft_create
from batches.models import Batch, BatchDraft, PromptTemplate
from generation.links import signed_image_url
from generation.models import Conversation, ConversationTurn, Image, Job
from series.models import Frame, Series
from tenants.models import ApiKey, Membership
from tenants.permissions import view_action
from tenants.roles import scopes_allow
from tenants.services import api_key_create, api_key_revoke
from tests.plugins.actors import Actor
from tests.security.images import png_declaring
from tests.security.routes import Route, all_routes, api_routes
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create, event_emit

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PUBLIC_HOOK = "https://93.184.215.14/hook"  # a literal public address: no DNS in tests
# /invitations/<token>/ is an emailed link named by an unguessable token, not a tenant's
# object id (tests/dashboard/test_invitations.py covers who may accept it).
NOT_DASHBOARD = ("/api/", "/admin/", "/billing/", "/login/", "/logout/", "/password-reset/",
                 "/healthz", "/^api/", "/invitations/")  # fmt: skip


@dataclass
class World:
    """One object of every kind in tenant A, by the URL parameter that names it."""

    ids: dict[str, str]

    def snapshot(self) -> dict[str, Any]:
        """Everything about A's objects that a write by someone else could change."""
        return {
            "jobs": list(Job.objects.values_list("id", "status", "tenant_id", "count")),
            "images": list(Image.objects.values_list("id", "tenant_id", "sha256")),
            "endpoints": list(
                WebhookEndpoint.objects.values_list("id", "url", "enabled", "secret", "tenant_id")
            ),
            "deliveries": list(WebhookDelivery.objects.values_list("id", "status", "attempts")),
            "batches": list(Batch.objects.values_list("id", "status", "tenant_id")),
            "drafts": list(BatchDraft.objects.values_list("id", "batch_id", "rows")),
            "templates": list(PromptTemplate.objects.values_list("id", "name", "text")),
            "keys": list(ApiKey.objects.values_list("id", "revoked_at", "tenant_id")),
            "members": list(Membership.objects.values_list("id", "role", "tenant_id", "user_id")),
            "series": list(Series.objects.values_list("id", "status", "cancel_requested")),
            "frames": list(Frame.objects.values_list("id", "prompt", "needs_run", "attempts")),
            "conversations": list(
                Conversation.objects.values_list("id", "tenant_id", "history", "updated_at")
            ),
            "turns": list(ConversationTurn.objects.values_list("id", "conversation_id", "prompt")),
        }


@pytest.fixture
def world(owner: Actor, member: Actor, outsider: Actor) -> World:
    api = owner.api()
    job = api.post("/api/v1/generations", {"prompt": "a cat"}, format="json").json()
    upload = SimpleUploadedFile("a.png", png_declaring(8, 8, rows=8), "image/png")
    image = api.post("/api/v1/images", {"file": upload}, format="multipart").json()
    endpoint, _ = endpoint_create(tenant=owner.tenant, url=PUBLIC_HOOK, event_types=[])
    (delivery,) = event_emit(tenant=owner.tenant, event_type="job.succeeded", data={"id": "j"})
    batch = api.post("/api/v1/batches", {"items": [{"prompt": "x"}]}, format="json").json()
    template = api.post(
        "/api/v1/templates", {"name": "T", "text": "A {thing}"}, format="json"
    ).json()
    series = api.post("/api/v1/series", {"frames": [{"prompt": "a"}]}, format="json").json()
    membership = Membership.objects.get(tenant=owner.tenant, user=member.user)
    conversation = api.post(f"/api/v1/images/{image['id']}/conversations", {}, format="json")
    conversation_id = conversation.json()["id"]
    turn = api.post(f"/api/v1/conversations/{conversation_id}/turns", {"prompt": "dusk"})
    draft = draft_create(
        tenant=owner.tenant, user=owner.user, source=BatchDraft.Source.PROMPTS, text="a\nb"
    )
    return World(
        ids={
            "job_id": job["id"],
            "image_id": image["id"],
            "endpoint_id": str(endpoint.pk),
            "delivery_id": str(delivery.pk),
            "batch_id": batch["id"],
            "template_id": template["id"],
            "key_id": str(owner.api_key.pk),
            "membership_id": str(membership.pk),
            "draft_id": str(draft.pk),
            "series_id": series["id"],
            "index": "0",
            "conversation_id": conversation_id,
            "turn_id": turn.json()["id"],
        }
    )


def _object_routes(routes: list[Route]) -> list[Route]:
    return [r for r in routes if r.params]


def _dashboard_routes() -> list[Route]:
    return [r for r in all_routes() if not r.template.startswith(NOT_DASHBOARD)]


def _implemented(route: Route) -> list[str]:
    cls = getattr(route.callback, "cls", None)
    if cls is None:
        return METHODS
    return [m for m in METHODS if hasattr(cls, m.lower())]


def _call(client: Any, method: str, path: str) -> Any:
    return getattr(client, method.lower())(path, {}, content_type="application/json")


def _path(route: Route, world: World) -> str:
    unknown = [p for p in route.params if p not in world.ids]
    assert not unknown, f"{route.template}: give the BOLA world an object for {unknown}"
    return route.fill(**world.ids)


# Another tenant ------------------------------------------------------------------------


def test_another_tenant_gets_404_on_every_api_route_with_an_object_id(
    world: World, outsider: Actor
) -> None:
    # Every scope, so that no route stops at the scope check before the object lookup.
    key = api_key_create(tenant=outsider.tenant, name="full", scopes=list(ApiKey.SCOPES))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    before = world.snapshot()
    cells, leaks = 0, []
    routes = _object_routes(api_routes())
    for route in routes:
        path = _path(route, world)
        for method in METHODS:
            response = _call(client, method, path)
            cells += 1
            if response.status_code not in (404, 405):
                leaks.append(f"{method} {route.template}: {response.status_code}")
    assert len(routes) >= 17
    assert (cells, leaks) == (len(routes) * 5, [])
    assert world.snapshot() == before


def test_another_tenant_gets_404_on_every_dashboard_url_with_an_object_id(
    world: World, outsider: Actor
) -> None:
    browser = Client()
    browser.force_login(outsider.user)
    before = world.snapshot()
    cells, leaks = 0, []
    for route in _object_routes(_dashboard_routes()):
        path = _path(route, world)
        for method in ("GET", "POST"):
            response = getattr(browser, method.lower())(path)
            cells += 1
            if response.status_code not in (404, 405):
                leaks.append(f"{method} {route.template}: {response.status_code}")
    assert cells >= 20 and leaks == [], leaks
    assert world.snapshot() == before


def test_switching_to_a_tenant_one_is_not_a_member_of_is_refused(
    owner: Actor, outsider: Actor
) -> None:
    browser = Client()
    browser.force_login(owner.user)
    browser.post("/switch/", {"tenant": outsider.tenant.pk})
    assert browser.get("/api/v1/me").json()["tenant"]["slug"] == owner.tenant.slug


# Members and managers ------------------------------------------------------------------


def test_a_member_gets_403_on_every_dashboard_url_for_owners_and_admins(
    world: World, member: Actor
) -> None:
    browser = Client()
    browser.force_login(member.user)
    before = world.snapshot()
    managed = [r for r in _dashboard_routes() if getattr(r.callback, "manager_only", False)]
    cells, leaks = 0, []
    for route in managed:
        for method in ("GET", "POST"):
            response = getattr(browser, method.lower())(_path(route, world))
            cells += 1
            if response.status_code not in (403, 405):
                leaks.append(f"{method} {route.template}: {response.status_code}")
    assert len(managed) >= 12 and leaks == [], leaks
    assert world.snapshot() == before


# Keys ----------------------------------------------------------------------------------


def test_a_revoked_key_gets_401_on_every_api_route(world: World, owner: Actor) -> None:
    issued = api_key_create(tenant=owner.tenant, name="old", created_by=owner.user)
    api_key_revoke(api_key=issued.api_key)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    before = world.snapshot()
    cells, leaks = 0, []
    for route in api_routes():
        for method in METHODS:
            cache.clear()  # failures per address would turn these into 429s after 20
            response = _call(client, method, _path(route, world))
            cells += 1
            if response.status_code != 401:
                leaks.append(f"{method} {route.template}: {response.status_code}")
            else:
                assert response.json()["error"]["code"] == "invalid_api_key"
    assert len(api_routes()) >= 27
    assert (cells, leaks) == (len(api_routes()) * 5, [])
    assert world.snapshot() == before


def test_a_key_lacking_the_scope_gets_403_on_every_api_operation(
    world: World, owner: Actor
) -> None:
    keys = {
        scope: api_key_create(tenant=owner.tenant, name=scope, scopes=[scope]).plaintext
        for scope in ApiKey.SCOPES
    }
    before = world.snapshot()
    cells, leaks = 0, []
    for route in api_routes():
        cls = route.callback.cls  # type: ignore[attr-defined]
        for method in _implemented(route):
            # The action the view declares (tenants.roles), and a key none of whose
            # scopes allow it.
            action = view_action(cls, method)
            other = next(s for s in ApiKey.SCOPES if not scopes_allow([s], action))
            client = Client(HTTP_AUTHORIZATION=f"Bearer {keys[other]}")
            response = _call(client, method, _path(route, world))
            cells += 1
            if response.status_code != 403:
                leaks.append(f"{method} {route.template} with {other!r}: {response.status_code}")
            else:
                assert response.json()["error"]["code"] == "insufficient_scope"
    assert cells >= 35 and leaks == [], leaks
    assert world.snapshot() == before


# Signed links --------------------------------------------------------------------------


def _second_image(owner: Actor) -> str:
    upload = SimpleUploadedFile("b.png", png_declaring(9, 9, rows=9), "image/png")
    return str(
        owner.api().post("/api/v1/images", {"file": upload}, format="multipart").json()["id"]
    )


def test_a_signed_link_opens_its_own_image_only_and_only_until_it_expires(
    world: World, owner: Actor
) -> None:
    image_id, other_id = world.ids["image_id"], _second_image(owner)
    anonymous = Client()
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        link = signed_image_url(image_id, "content")
        sig = link.split("sig=")[1]
        thumb_sig = signed_image_url(image_id, "thumbnail").split("sig=")[1]
        assert anonymous.get(link).status_code == 200
        tries = {
            "another image": f"/api/v1/images/{other_id}/content?sig={sig}",
            "the thumbnail variant": f"/api/v1/images/{image_id}/thumbnail?sig={sig}",
            "a thumbnail signature": f"/api/v1/images/{image_id}/content?sig={thumb_sig}",
            "a tampered signature": f"{link[:-2]}xx",
            "no signature": f"/api/v1/images/{image_id}/content",
            "the image's metadata": f"/api/v1/images/{image_id}?sig={sig}",
        }  # fmt: skip
        opened = {name: anonymous.get(url).status_code for name, url in tries.items()}
        clock.shift(dt.timedelta(seconds=3601))
        opened["after an hour"] = anonymous.get(link).status_code
    assert {name: code for name, code in opened.items() if code < 400} == {}


# Mass assignment -----------------------------------------------------------------------

PRIVILEGED = {
    "id": "00000000-0000-0000-0000-000000000001",
    "tenant": 999,
    "tenant_id": 999,
    "plan": "enterprise",
    "status": "succeeded",
    "estimated_cost": "0.00",
    "cost": "0.00",
    "reserved_images": 0,
    "reserved_nanos": 0,
    "api_key": 1,
    "created_at": "2000-01-01T00:00:00Z",
    "secret": "whsec_chosen_by_the_attacker",
}


def test_privileged_fields_in_bodies_are_ignored(world: World, owner: Actor) -> None:
    api = owner.api()
    changed = []
    # Refused (400 naming the fields, issue 26's strict input) or ignored: never applied.
    jobs_before = Job.objects.count()
    refused = [
        path
        for path, body in (
            ("/api/v1/generations", {"prompt": "x", **PRIVILEGED}),
            ("/api/v1/batches", {"items": [{"prompt": "x"}], **PRIVILEGED}),
            ("/api/v1/templates", {"name": "T2", "text": "x {a}", **PRIVILEGED}),
        )
        if api.post(path, body, format="json").status_code == 400
    ]
    if len(refused) == 3:
        endpoint = WebhookEndpoint.objects.get(pk=world.ids["endpoint_id"])
        answer = api.patch(f"/api/v1/webhook-endpoints/{endpoint.pk}", PRIVILEGED, format="json")
        after = WebhookEndpoint.objects.get(pk=endpoint.pk)
        unchanged = (after.secret, after.tenant_id) == (endpoint.secret, endpoint.tenant_id)
        assert answer.status_code == 400 and unchanged
        assert Job.objects.count() == jobs_before
        return
    job = api.post("/api/v1/generations", {"prompt": "x", **PRIVILEGED}, format="json")
    row = Job.objects.get(pk=job.json()["id"])
    if row.tenant_id != owner.tenant.pk or row.status != "queued" or row.reserved_images != 1:
        changed.append("job")
    if str(row.pk) == PRIVILEGED["id"] or row.estimated_cost == 0:
        changed.append("job id/cost")
    batch = api.post(
        "/api/v1/batches", {"items": [{"prompt": "x"}], **PRIVILEGED}, format="json"
    ).json()
    if (
        Batch.objects.get(pk=batch["id"]).tenant_id != owner.tenant.pk
        or batch["status"] == "succeeded"
    ):
        changed.append("batch")
    template = api.post(
        "/api/v1/templates", {"name": "T2", "text": "x {a}", **PRIVILEGED}, format="json"
    ).json()
    if PromptTemplate.objects.get(pk=template["id"]).tenant_id != owner.tenant.pk:
        changed.append("template")
    endpoint = WebhookEndpoint.objects.get(pk=world.ids["endpoint_id"])
    api.patch(f"/api/v1/webhook-endpoints/{endpoint.pk}", PRIVILEGED, format="json")
    after = WebhookEndpoint.objects.get(pk=endpoint.pk)
    if (after.secret, after.tenant_id, after.created_at) != (
        endpoint.secret, endpoint.tenant_id, endpoint.created_at
    ):  # fmt: skip
        changed.append("endpoint")
    assert changed == []
