"""Stripe webhooks in, with payloads the emulator really signed and posted."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.test import Client
from pytest_django.fixtures import Settings

from billing.models import StripeWebhookEvent, UsageEvent
from billing.services import tenant_stripe_ids_set
from billing.sync import sync_pending
from tenants.models import Tenant
from tests.billing.conftest import record_usage
from tests.plugins.actors import Actor, assert_error, make_plan
from tests.plugins.stripe import Delivery, StripeEmulator, WebhookReceiver

pytestmark = pytest.mark.django_db
WEBHOOK = "/billing/stripe/webhook/"


@pytest.fixture
def webhooks(stripe_app: StripeEmulator, stripe_webhooks: WebhookReceiver, settings: Settings):
    settings.STRIPE_WEBHOOK_SECRET = stripe_webhooks.secret
    return stripe_webhooks


@pytest.fixture
def payment_failed(
    owner: Actor, webhooks: WebhookReceiver, stripe_app: StripeEmulator, subscribed: Callable
) -> Delivery:
    """The signed `invoice.payment_failed` Stripe sent for the owner's first invoice."""
    subscribed(owner.tenant)
    stripe_app.finalize_invoice(owner.tenant.stripe_customer_id, pay=False)
    return webhooks.wait_for("invoice.payment_failed")


def post(delivery: Delivery, signature: str | None = None) -> Any:
    return Client().post(
        WEBHOOK,
        data=delivery.body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature if signature is not None else delivery.signature,
    )


def forward(receiver: WebhookReceiver, event_type: str) -> Delivery:
    delivery = receiver.wait_for(event_type)
    response = post(delivery)
    assert response.status_code == 200, response.content
    return delivery


def signed(payload: dict[str, Any], secret: str) -> Delivery:
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return Delivery(body=body, signature=f"t={timestamp},v1={mac.hexdigest()}")


def submit(actor: Actor) -> Any:
    return actor.api().post("/api/v1/generations", {"prompt": "a red fox"}, format="json")


def test_signed_event_is_processed_once_and_its_replay_is_acknowledged(
    owner: Actor, payment_failed: Delivery
) -> None:
    delivery = payment_failed

    first, replay = post(delivery), post(delivery)

    assert (first.status_code, first.json()["replay"]) == (200, False)
    assert (replay.status_code, replay.json()["replay"]) == (200, True)
    assert StripeWebhookEvent.objects.filter(event_id=delivery.event["id"]).count() == 1
    owner.tenant.refresh_from_db()
    assert owner.tenant.status == Tenant.Status.PAST_DUE


def test_replayed_event_has_no_effect_the_second_time(
    owner: Actor, payment_failed: Delivery, webhooks: WebhookReceiver, stripe_app: StripeEmulator
) -> None:
    assert post(payment_failed).status_code == 200
    stripe_app.finalize_invoice(owner.tenant.stripe_customer_id, pay=True)
    forward(webhooks, "invoice.paid")

    assert post(payment_failed).json()["replay"] is True

    owner.tenant.refresh_from_db()
    assert owner.tenant.status == Tenant.Status.ACTIVE


def test_bad_signature_is_refused_with_400(owner: Actor, payment_failed: Delivery) -> None:
    delivery = payment_failed
    forged = signed(delivery.event, "whsec_not_the_secret")

    assert post(delivery, signature="t=1,v1=00").status_code == 400
    assert post(forged).status_code == 400
    assert post(delivery, signature="").status_code == 400
    assert not StripeWebhookEvent.objects.exists()
    owner.tenant.refresh_from_db()
    assert owner.tenant.status == Tenant.Status.ACTIVE


def test_payment_failed_pauses_submissions_with_402_and_paid_restores_them(
    owner: Actor,
    webhooks: WebhookReceiver,
    stripe_app: StripeEmulator,
    subscribed: Callable,
    django_capture_on_commit_callbacks: Any,
) -> None:
    subscribed(owner.tenant)
    customer = owner.tenant.stripe_customer_id

    stripe_app.finalize_invoice(customer, pay=False)
    forward(webhooks, "invoice.payment_failed")
    forward(webhooks, "customer.subscription.updated")
    assert_error(submit(owner), 402, "billing_inactive")

    stripe_app.finalize_invoice(customer, pay=True)
    forward(webhooks, "invoice.paid")
    forward(webhooks, "customer.subscription.updated")
    with django_capture_on_commit_callbacks(execute=False):
        assert submit(owner).status_code == 202


def test_subscription_status_maps_to_tenant_status(owner: Actor, stripe_app: StripeEmulator):
    secret = "whsec_test_billing"
    tenant_stripe_ids_set(tenant=owner.tenant, customer_id="cus_map", subscription_id="sub_map")

    def send(event_type: str, status: str, event_id: str) -> str:
        subscription = {"id": "sub_map", "customer": "cus_map", "status": status}
        event = {"id": event_id, "type": event_type, "data": {"object": subscription}}
        assert post(signed(event, secret)).status_code == 200
        owner.tenant.refresh_from_db()
        return owner.tenant.status

    assert send("customer.subscription.updated", "unpaid", "evt_1") == "past_due"
    assert send("customer.subscription.updated", "active", "evt_2") == "active"
    assert send("customer.subscription.updated", "past_due", "evt_3") == "past_due"
    assert send("customer.subscription.deleted", "canceled", "evt_4") == "canceled"


def test_stripe_never_lifts_an_operators_suspension(owner: Actor, stripe_app: StripeEmulator):
    tenant_stripe_ids_set(tenant=owner.tenant, customer_id="cus_susp")
    Tenant.objects.filter(pk=owner.tenant.pk).update(status=Tenant.Status.SUSPENDED)
    event = {"id": "evt_s", "type": "invoice.paid", "data": {"object": {"customer": "cus_susp"}}}

    assert post(signed(event, "whsec_test_billing")).status_code == 200

    owner.tenant.refresh_from_db()
    assert owner.tenant.status == Tenant.Status.SUSPENDED


def test_unknown_event_type_is_acknowledged_and_ignored(stripe_app: StripeEmulator) -> None:
    event = {"id": "evt_unknown", "type": "customer.tax_id.created", "data": {"object": {}}}

    response = post(signed(event, "whsec_test_billing"))

    assert response.status_code == 200
    assert StripeWebhookEvent.objects.get().event_type == "customer.tax_id.created"


def test_checkout_completed_switches_the_plan_and_stores_the_subscription(
    owner: Actor, webhooks: WebhookReceiver
) -> None:
    pro = make_plan(slug="pro", name="Pro", markup_per_image="0.005")
    url = owner.api().post("/api/v1/billing/checkout", {"plan": "pro"}, format="json").json()["url"]

    paid = requests.post(f"{url}/pay", allow_redirects=False, timeout=10)
    assert paid.status_code == 303
    assert "checkout=success" in paid.headers["Location"]
    completed = forward(webhooks, "checkout.session.completed")

    owner.tenant.refresh_from_db()
    assert owner.tenant.plan == pro
    assert owner.tenant.stripe_subscription_id == completed.event["data"]["object"]["subscription"]


def test_portal_cancellation_cancels_the_tenant(
    owner: Actor, webhooks: WebhookReceiver, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    url = owner.api().post("/api/v1/billing/portal").json()["url"]

    requests.post(
        f"{url}/cancel",
        data={"subscription": owner.tenant.stripe_subscription_id},
        allow_redirects=False,
        timeout=10,
    )
    forward(webhooks, "customer.subscription.deleted")

    owner.tenant.refresh_from_db()
    assert owner.tenant.status == Tenant.Status.CANCELED


def test_meter_error_report_marks_the_rejected_usage_failed(
    owner: Actor, webhooks: WebhookReceiver, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    # A customer Stripe does not know: the meter event is accepted, then reported.
    Tenant.objects.filter(pk=owner.tenant.pk).update(stripe_customer_id="cus_gone")
    (rejected,) = record_usage(owner.tenant)
    assert sync_pending().sent == 1

    forward(webhooks, "v1.billing.meter.error_report_triggered")

    rejected.refresh_from_db()
    assert rejected.stripe_state == UsageEvent.StripeState.FAILED
    assert "meter_event_customer_not_found" in rejected.stripe_last_error
