from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiKey, Tenant
from tenants.services import api_key_create, api_key_revoke, tenant_set_status
from tests.plugins.actors import Actor, assert_error

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"


def test_me_returns_the_keys_tenant_plan_and_quota(owner: Actor) -> None:
    response = owner.api().get(ME)

    assert response.status_code == 200
    body = response.json()
    assert body["tenant"]["slug"] == "acme"
    assert body["tenant"]["plan"]["monthly_image_quota"] == 1000
    assert body["quota"]["images"] == {"quota": 1000, "used": 0, "reserved": 0, "remaining": 1000}
    assert body["quota"]["spend"]["cap"] == "100.00"
    assert body["scopes"] == list(owner.api_key.scopes)
    assert set(body["scopes"]) == set(ApiKey.SCOPES)  # the standing actors' keys hold all


def test_outsiders_key_sees_only_its_own_tenant(owner: Actor, outsider: Actor) -> None:
    assert outsider.api().get(ME).json()["tenant"]["slug"] == "globex"


def test_no_key_is_refused_with_401() -> None:
    error = assert_error(APIClient().get(ME), 401, "not_authenticated")
    assert "Bearer" in error["message"]


@pytest.mark.parametrize(
    "header",
    ["Bearer bk_live_000000000000_wrong", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer "],
)
def test_bad_key_is_refused_with_401(owner: Actor, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(ME)
    assert_error(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_right_prefix_with_wrong_secret_is_refused(owner: Actor) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {owner.api_key.prefix}_not-the-secret")
    assert_error(client.get(ME), 401, "invalid_api_key")


def test_revoked_key_is_refused_with_401(owner: Actor) -> None:
    api_key_revoke(api_key=owner.api_key)
    error = assert_error(owner.api().get(ME), 401, "invalid_api_key")
    assert "revoked" in error["message"]


def test_expired_key_is_refused_with_401(owner: Actor) -> None:
    issued = api_key_create(
        tenant=owner.tenant, name="old", expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert "expired" in assert_error(client.get(ME), 401, "invalid_api_key")["message"]


@pytest.mark.parametrize("status", [Tenant.Status.SUSPENDED, Tenant.Status.CANCELED])
def test_suspended_or_canceled_tenant_is_refused_with_403(owner: Actor, status: str) -> None:
    tenant_set_status(tenant=owner.tenant, status=status)
    assert_error(owner.api().get(ME), 403, f"tenant_{status}")


def test_key_without_read_scope_cannot_read(owner: Actor, actor_factory) -> None:  # type: ignore[no-untyped-def]
    writer = actor_factory(owner.tenant, "writer@acme.test", "member", scopes=["generate"])
    assert_error(writer.api().get(ME), 403, "insufficient_scope")


def test_key_is_stored_only_as_a_hash(owner: Actor) -> None:
    owner.api_key.refresh_from_db()
    secret = owner.key[len(owner.api_key.prefix) + 1 :]
    assert secret not in owner.api_key.secret_hash
    assert owner.key.startswith(owner.api_key.prefix)


def test_use_records_last_used(owner: Actor) -> None:
    assert owner.api_key.last_used_at is None
    owner.api().get(ME)
    owner.api_key.refresh_from_db()
    assert owner.api_key.last_used_at is not None


def test_unknown_api_path_answers_json_404(owner: Actor) -> None:
    assert_error(owner.api().get("/api/v1/no-such-thing"), 404, "not_found")


def test_every_response_carries_a_request_id(owner: Actor) -> None:
    response = owner.api().get(ME, HTTP_X_REQUEST_ID="client-chosen-id-123")
    assert response["X-Request-Id"] == "client-chosen-id-123"
