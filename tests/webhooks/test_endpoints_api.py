"""The webhook-endpoints API: CRUD, the secret shown once, scoping, validation, the log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from tests.plugins.actors import Actor, assert_error
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import event_emit

pytestmark = pytest.mark.django_db
ENDPOINTS = "/api/v1/webhook-endpoints"
PUBLIC_URL = "https://93.184.215.14/hooks/bunch"  # a literal public address: no DNS needed


@pytest.fixture(autouse=True)
def refuse_private(settings: Settings) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False


def create(actor: Actor, **body: Any) -> dict[str, Any]:
    response = actor.api().post(ENDPOINTS, {"url": PUBLIC_URL, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def emit_one(actor: Actor, event_type: str = "job.succeeded") -> WebhookDelivery:
    (delivery,) = event_emit(tenant=actor.tenant, event_type=event_type, data={"id": "job_1"})
    return delivery


def test_create_returns_the_endpoint_with_its_secret_in_standard_webhooks_form(
    owner: Actor,
) -> None:
    body = create(owner, description="orders", event_types=["job.succeeded", "job.failed"])

    assert body["url"] == PUBLIC_URL
    assert body["description"] == "orders"
    assert body["event_types"] == ["job.succeeded", "job.failed"]
    assert body["enabled"] is True
    assert body["secret"].startswith("whsec_")
    assert WebhookEndpoint.objects.get(pk=body["id"]).secret == body["secret"]


def test_secret_is_never_shown_again_after_creation(owner: Actor) -> None:
    endpoint_id = create(owner)["id"]

    listed = owner.api().get(ENDPOINTS).json()["results"][0]
    detail = owner.api().get(f"{ENDPOINTS}/{endpoint_id}").json()
    patched = owner.api().patch(f"{ENDPOINTS}/{endpoint_id}", {"description": "x"}).json()

    for body in (listed, detail, patched):
        assert "secret" not in body


def test_list_shows_the_tenants_endpoints_newest_first(owner: Actor, outsider: Actor) -> None:
    first = create(owner)["id"]
    second = create(owner)["id"]
    create(outsider)

    body = owner.api().get(ENDPOINTS).json()

    assert [e["id"] for e in body["results"]] == [second, first]
    assert body["next"] is None


def test_members_key_manages_the_same_tenants_endpoints(owner: Actor, member: Actor) -> None:
    endpoint_id = create(owner)["id"]
    assert member.api().get(f"{ENDPOINTS}/{endpoint_id}").status_code == 200


def test_patch_changes_url_events_description_and_enabled(owner: Actor) -> None:
    endpoint_id = create(owner)["id"]
    changes = {
        "url": "https://93.184.215.15/new",
        "event_types": ["job.canceled"],
        "description": "new",
        "enabled": False,
    }

    response = owner.api().patch(f"{ENDPOINTS}/{endpoint_id}", changes, format="json")

    assert response.status_code == 200
    assert {key: response.json()[key] for key in changes} == changes
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    assert (endpoint.url, endpoint.event_types, endpoint.enabled) == (
        "https://93.184.215.15/new",
        ["job.canceled"],
        False,
    )


def test_delete_removes_the_endpoint_and_its_deliveries(owner: Actor) -> None:
    endpoint_id = create(owner)["id"]
    emit_one(owner)

    response = owner.api().delete(f"{ENDPOINTS}/{endpoint_id}")

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint_id).exists()
    assert not WebhookDelivery.objects.exists()
    assert_error(owner.api().get(f"{ENDPOINTS}/{endpoint_id}"), 404, "not_found")


def test_rotate_secret_returns_a_new_secret_and_replaces_the_old(owner: Actor) -> None:
    created = create(owner)

    response = owner.api().post(f"{ENDPOINTS}/{created['id']}/rotate-secret")

    assert response.status_code == 200
    secret = response.json()["secret"]
    assert secret.startswith("whsec_") and secret != created["secret"]
    assert WebhookEndpoint.objects.get(pk=created["id"]).secret == secret


@pytest.mark.parametrize(
    "event_types, unknown",
    [(["job.succeeded", "job.exploded"], ["job.exploded"]), (["nope", "job.*"], ["nope", "job.*"])],
)
def test_unknown_event_types_are_refused_by_name(
    owner: Actor, event_types: list[str], unknown: list[str]
) -> None:
    response = owner.api().post(
        ENDPOINTS, {"url": PUBLIC_URL, "event_types": event_types}, format="json"
    )

    error = assert_error(response, 400, "unknown_event_type")
    assert all(name in error["message"] for name in unknown)
    assert "event_types" in error["fields"]
    assert not WebhookEndpoint.objects.exists()


def test_unknown_event_types_are_refused_on_patch_too(owner: Actor) -> None:
    endpoint_id = create(owner)["id"]
    response = owner.api().patch(
        f"{ENDPOINTS}/{endpoint_id}", {"event_types": ["image.ready"]}, format="json"
    )
    assert "image.ready" in assert_error(response, 400, "unknown_event_type")["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00::1]/hook",
        "ftp://93.184.215.14/hook",
    ],
)
def test_private_and_non_http_destinations_are_refused(owner: Actor, url: str) -> None:
    response = owner.api().post(ENDPOINTS, {"url": url}, format="json")
    assert_error(response, 400, "webhook_url_not_allowed")
    assert not WebhookEndpoint.objects.exists()


def test_patch_to_a_private_destination_is_refused(owner: Actor) -> None:
    endpoint_id = create(owner)["id"]
    response = owner.api().patch(
        f"{ENDPOINTS}/{endpoint_id}", {"url": "http://127.0.0.1/x"}, format="json"
    )
    assert_error(response, 400, "webhook_url_not_allowed")
    assert WebhookEndpoint.objects.get(pk=endpoint_id).url == PUBLIC_URL


def test_private_destinations_are_accepted_when_the_setting_allows(
    owner: Actor, settings: Settings
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    assert create(owner, url="http://127.0.0.1:9999/hook")["url"] == "http://127.0.0.1:9999/hook"


def test_missing_url_is_a_validation_error(owner: Actor) -> None:
    error = assert_error(owner.api().post(ENDPOINTS, {}, format="json"), 400, "validation_error")
    assert "url" in error["fields"]


def test_deliveries_list_is_newest_first_with_a_cursor(owner: Actor) -> None:
    create(owner)
    endpoint_id = WebhookEndpoint.objects.get().id
    deliveries = [emit_one(owner) for _ in range(3)]
    for age, delivery in enumerate(reversed(deliveries)):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            created_at=delivery.created_at - dt.timedelta(minutes=age)
        )

    first = owner.api().get(f"{ENDPOINTS}/{endpoint_id}/deliveries?limit=2").json()
    second = owner.api().get(first["next"]).json()

    ids = [d["id"] for d in first["results"] + second["results"]]
    assert ids == [str(d.id) for d in reversed(deliveries)]
    assert first["results"][0]["status"] == "pending"
    assert first["results"][0]["payload"]["type"] == "job.succeeded"
    assert second["next"] is None


def test_redeliver_puts_the_delivery_back_to_pending_and_enqueues_it(
    owner: Actor, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    endpoint_id = create(owner)["id"]
    delivery = emit_one(owner)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=7, next_attempt_at=None
    )
    url = f"{ENDPOINTS}/{endpoint_id}/deliveries/{delivery.id}/redeliver"

    with django_capture_on_commit_callbacks() as callbacks:
        response = owner.api().post(url)

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert response.json()["next_attempt_at"] is not None
    assert len(callbacks) == 1


def test_a_delivery_of_another_endpoint_is_not_found(owner: Actor) -> None:
    first = create(owner, event_types=["job.succeeded"])["id"]
    create(owner, event_types=["job.failed"])
    other = emit_one(owner, "job.failed")
    assert other.endpoint_id != first

    response = owner.api().post(f"{ENDPOINTS}/{first}/deliveries/{other.id}/redeliver")

    assert_error(response, 404, "not_found")


def _every_endpoint(endpoint_id: str, delivery_id: str) -> list[tuple[str, str]]:
    one = f"{ENDPOINTS}/{endpoint_id}"
    return [
        ("get", ENDPOINTS),
        ("post", ENDPOINTS),
        ("get", one),
        ("patch", one),
        ("delete", one),
        ("post", f"{one}/rotate-secret"),
        ("get", f"{one}/deliveries"),
        ("post", f"{one}/deliveries/{delivery_id}/redeliver"),
    ]


def test_every_endpoint_refuses_a_request_without_a_key(owner: Actor) -> None:
    endpoint_id = create(owner)["id"]
    delivery = emit_one(owner)
    for method, path in _every_endpoint(endpoint_id, str(delivery.id)):
        response = getattr(APIClient(), method)(path, {"url": PUBLIC_URL}, format="json")
        assert_error(response, 401, "not_authenticated")


def test_another_tenants_endpoint_and_deliveries_are_not_found(
    owner: Actor, outsider: Actor
) -> None:
    endpoint_id = create(owner)["id"]
    delivery = emit_one(owner)
    routes = _every_endpoint(endpoint_id, str(delivery.id))[2:]  # the per-endpoint ones
    for method, path in routes:
        response = getattr(outsider.api(), method)(path, {"description": "x"}, format="json")
        assert_error(response, 404, "not_found")

    assert WebhookEndpoint.objects.get(pk=endpoint_id).description == ""
    assert WebhookDelivery.objects.get().status == "pending"


def test_read_only_key_can_list_but_not_create(
    owner: Actor, actor_factory: Callable[..., Actor]
) -> None:
    reader = actor_factory(owner.tenant, "reader@acme.test", "member", scopes=["read"])
    assert reader.api().get(ENDPOINTS).status_code == 200
    response = reader.api().post(ENDPOINTS, {"url": PUBLIC_URL}, format="json")
    assert_error(response, 403, "insufficient_scope")


def test_webhook_endpoints_are_in_the_openapi_schema() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for path in [
        "/api/v1/webhook-endpoints",
        "/api/v1/webhook-endpoints/{endpoint_id}",
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries",
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    ]:
        assert path in paths
    listed = paths["/api/v1/webhook-endpoints"]["get"]["responses"]["200"]
    assert "Paginated" in listed["content"]["application/json"]["schema"]["$ref"]
