"""Key management by API: `/api/v1/api-keys` needs a scope no default key has."""

from __future__ import annotations

from rest_framework.test import APIClient

from tenants.models import ApiKey
from tenants.services import api_key_create
from tests.plugins.actors import Actor, assert_error

KEYS = "/api/v1/api-keys"


def _manager(actor: Actor) -> APIClient:
    issued = api_key_create(
        tenant=actor.tenant, name="key admin", scopes=["keys:manage", "read"], created_by=actor.user
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def test_default_keys_cannot_manage_keys(owner: Actor) -> None:
    assert "keys:manage" not in owner.api_key.scopes
    assert_error(owner.api().get(KEYS), 403, "insufficient_scope")
    assert_error(owner.api().post(KEYS, {"name": "x"}, format="json"), 403, "insufficient_scope")


def test_create_shows_the_key_once_then_it_works_and_lists_without_its_secret(
    owner: Actor,
) -> None:
    manager = _manager(owner)

    created = manager.post(KEYS, {"name": "ci"}, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"].startswith(body["prefix"] + "_")
    assert body["scopes"] == ["generate", "read"]  # keys:manage only when named
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert client.get("/api/v1/me").status_code == 200
    listed = manager.get(KEYS).json()["results"]
    assert body["id"] in [k["id"] for k in listed]
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    assert "key" not in manager.get(f"{KEYS}/{body['id']}").json()


def test_revoke_stops_the_key_at_once(owner: Actor) -> None:
    manager = _manager(owner)
    body = manager.post(KEYS, {"name": "temp"}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['key']}")

    assert manager.delete(f"{KEYS}/{body['id']}").status_code == 204

    assert_error(client.get("/api/v1/me"), 401, "invalid_api_key")
    assert manager.get(f"{KEYS}/{body['id']}").json()["revoked_at"] is not None


def test_unknown_scopes_and_fields_are_refused(owner: Actor) -> None:
    manager = _manager(owner)
    bad = manager.post(KEYS, {"name": "x", "scopes": ["root"]}, format="json")
    assert_error(bad, 400, "validation_error")
    extra = manager.post(KEYS, {"name": "x", "secret": "mine"}, format="json")
    assert list(assert_error(extra, 400, "validation_error")["fields"]) == ["secret"]


def test_another_tenants_keys_are_404(owner: Actor, outsider: Actor) -> None:
    manager = _manager(owner)
    theirs = outsider.api_key.pk
    assert_error(manager.get(f"{KEYS}/{theirs}"), 404, "not_found")
    assert_error(manager.delete(f"{KEYS}/{theirs}"), 404, "not_found")
    assert ApiKey.objects.get(pk=theirs).revoked_at is None
    assert outsider.api_key.pk not in [k["id"] for k in manager.get(KEYS).json()["results"]]


def test_a_member_signed_in_to_the_dashboard_cannot_manage_keys(
    member: Actor, owner: Actor
) -> None:
    client = APIClient()
    client.force_login(member.user)
    assert client.get(KEYS).status_code == 403
    client.force_login(owner.user)
    assert client.get(KEYS).status_code == 200
