"""Support staff see the delivery log and can redeliver from the admin."""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from tests.plugins.actors import Actor
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create, event_emit

pytestmark = pytest.mark.django_db
DELIVERIES = "/admin/webhooks/webhookdelivery/"


@pytest.fixture
def failed_delivery(owner: Actor, settings: Settings) -> WebhookDelivery:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    endpoint_create(tenant=owner.tenant, url="http://127.0.0.1:9/hook", event_types=[])
    (delivery,) = event_emit(tenant=owner.tenant, event_type="job.failed", data={"id": "j"})
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, next_attempt_at=None
    )
    return delivery


def test_delivery_log_lists_filters_and_shows_a_delivery(
    admin_client: Client, failed_delivery: WebhookDelivery
) -> None:
    listed = admin_client.get(DELIVERIES, {"status__exact": "failed", "q": "127.0.0.1"})
    detail = admin_client.get(f"{DELIVERIES}{failed_delivery.pk}/change/")

    assert listed.status_code == 200
    assert failed_delivery.event_id.encode() in detail.content
    assert detail.status_code == 200


def test_endpoint_admin_never_shows_the_secret(
    admin_client: Client, failed_delivery: WebhookDelivery
) -> None:
    endpoint = failed_delivery.endpoint
    page = admin_client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret.encode() not in page.content


def test_redeliver_action_puts_deliveries_back_to_pending(
    admin_client: Client, failed_delivery: WebhookDelivery
) -> None:
    response = admin_client.post(
        DELIVERIES, {"action": "redeliver", "_selected_action": [str(failed_delivery.pk)]}
    )

    assert response.status_code == 302
    failed_delivery.refresh_from_db()
    assert failed_delivery.status == "pending"
    assert failed_delivery.next_attempt_at is not None


def test_staff_can_pause_an_endpoint_but_not_change_its_url(
    admin_client: Client, failed_delivery: WebhookDelivery
) -> None:
    endpoint = failed_delivery.endpoint
    response = admin_client.post(
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/",
        {"description": "paused by support", "url": "http://10.0.0.1/"},
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.description) == (False, "paused by support")
    assert endpoint.url == "http://127.0.0.1:9/hook"
