"""Subscriptions, hosted pages, invoices and signed webhooks, driven through the real SDK."""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any

import pytest
import requests
import stripe


@pytest.fixture
def plan(stripe_client: stripe.StripeClient) -> Any:
    """A metered price at 4.5 cents per image on its own meter."""
    meter = stripe_client.v1.billing.meters.create(
        {
            "display_name": "Images",
            "event_name": f"image_{uuid.uuid4().hex[:12]}",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = stripe_client.v1.products.create({"name": "Images"})
    return stripe_client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount_decimal": "4.5",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    ), meter


@pytest.fixture
def customer(stripe_client: stripe.StripeClient) -> Any:
    return stripe_client.v1.customers.create({"name": "Acme", "metadata": {"tenant": "acme"}})


def _report(client: stripe.StripeClient, meter: Any, customer: Any, count: int) -> None:
    for _ in range(count):
        client.v1.billing.meter_events.create(
            {
                "event_name": meter.event_name,
                "payload": {"stripe_customer_id": customer.id, "value": "1"},
                "identifier": uuid.uuid4().hex,
            }
        )


def test_subscription_webhook_is_signed_so_construct_event_accepts_it(
    stripe_client, stripe_webhooks, plan, customer
):
    price, _ = plan
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )

    delivery = stripe_webhooks.wait_for("customer.subscription.created")
    event = stripe.Webhook.construct_event(
        delivery.body, delivery.signature, stripe_webhooks.secret
    )
    assert event.data.object.id == sub.id
    assert stripe_client.v1.events.retrieve(event.id).type == "customer.subscription.created"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body, delivery.signature, "whsec_wrong")


def test_subscription_items_carry_the_period_and_price_changes_emit_updated(
    stripe_client, stripe_webhooks, plan, customer
):
    price, meter = plan
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    other = stripe_client.v1.prices.create(
        {
            "product": price.product,
            "currency": "usd",
            "unit_amount_decimal": "6",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    updated = stripe_client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item.id, "price": other.id}]}
    )
    assert updated["items"].data[0].price.id == other.id
    assert stripe_webhooks.wait_for("customer.subscription.updated").event["data"]["object"][
        "id"
    ] == (sub.id)
    listed = stripe_client.v1.subscriptions.list({"customer": customer.id}).data
    assert [s.id for s in listed] == [sub.id]
    stripe_client.v1.subscriptions.cancel(sub.id)
    assert stripe_webhooks.wait_for("customer.subscription.deleted").event["type"]


def test_meter_error_report_is_a_signed_thin_event(
    stripe_client, stripe_webhooks, plan, stripe_fake
):
    _, meter = plan
    stripe_client.v1.billing.meter_events.create(
        {
            "event_name": meter.event_name,
            "payload": {"stripe_customer_id": "cus_missing", "value": "1"},
        },
        {"idempotency_key": "meter-event:lost-1"},
    )

    delivery = stripe_webhooks.wait_for("v1.billing.meter.error_report_triggered")
    notification = stripe_client.parse_event_notification(
        delivery.body, delivery.signature, stripe_webhooks.secret
    )
    assert notification.related_object.id == meter.id
    detail = notification.fetch_event()
    error_type = detail.data.reason.error_types[0]
    assert error_type.code == "meter_event_customer_not_found"
    assert error_type.sample_errors[0].request.identifier == "meter-event:lost-1"


def test_checkout_page_pay_subscribes_and_emits_events(
    stripe_client, stripe_webhooks, plan, customer
):
    price, _ = plan
    session = stripe_client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id}],
            "success_url": "http://app.test/billing/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://app.test/billing",
        }
    )
    page = requests.get(session.url, timeout=10)
    assert page.status_code == 200 and "Pay" in page.text
    action = page.text.split('action="', 1)[1].split('"', 1)[0]
    paid = requests.post(
        urllib.parse.urljoin(session.url, action), allow_redirects=False, timeout=10
    )

    assert paid.status_code == 303
    assert paid.headers["Location"] == f"http://app.test/billing/done?session={session.id}"
    created = stripe_webhooks.wait_for("customer.subscription.created").event["data"]["object"]
    completed = stripe_webhooks.wait_for("checkout.session.completed").event["data"]["object"]
    assert completed["subscription"] == created["id"]
    assert completed["customer"] == customer.id
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "complete"


def test_portal_page_cancels_the_subscription(stripe_client, stripe_webhooks, plan, customer):
    price, _ = plan
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    portal = stripe_client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": "http://app.test/account"}
    )
    page = requests.get(portal.url, timeout=10)
    assert sub.id in page.text
    action = page.text.split('action="', 1)[1].split('"', 1)[0]
    done = requests.post(
        urllib.parse.urljoin(portal.url, action),
        data={"subscription": sub.id},
        allow_redirects=False,
        timeout=10,
    )

    assert done.headers["Location"] == "http://app.test/account"
    deleted = stripe_webhooks.wait_for("customer.subscription.deleted").event["data"]["object"]
    assert deleted["id"] == sub.id
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_invoice_preview_prices_meter_usage_in_the_period(stripe_client, plan, customer):
    price, meter = plan
    stripe_client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    _report(stripe_client, meter, customer, 3)

    preview = stripe_client.v1.invoices.create_preview({"customer": customer.id})

    assert preview.total == 14  # 3 × 4.5¢ = 13.5¢, rounded half-up
    line = preview.lines.data[0]
    assert (line.quantity, line.amount) == (3, 14)
    assert line.pricing.price_details.price == price.id


def test_unpaid_invoice_makes_subscription_past_due_and_paying_restores_it(
    stripe_fake, stripe_client, stripe_webhooks, plan, customer
):
    price, meter = plan
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    _report(stripe_client, meter, customer, 2)

    invoice = stripe_fake.finalize_invoice(customer.id, pay=False)

    assert (invoice["status"], invoice["total"]) == ("open", 9)
    failed = stripe_webhooks.wait_for("invoice.payment_failed").event["data"]["object"]
    assert failed["id"] == invoice["id"]
    updated = stripe_webhooks.wait_for("customer.subscription.updated").event["data"]
    assert (updated["object"]["status"], updated["previous_attributes"]) == (
        "past_due",
        {"status": "active"},
    )
    assert stripe_client.v1.invoices.create_preview({"customer": customer.id}).total == 0

    stripe_client.v1.invoices.pay(invoice["id"])
    assert stripe_webhooks.wait_for("invoice.paid").event["data"]["object"]["status"] == "paid"
    assert stripe_client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_finalize_and_pay_emits_invoice_paid(stripe_fake, stripe_client, stripe_webhooks, plan):
    price, meter = plan
    customer = stripe_client.v1.customers.create({"name": "Paying"})
    stripe_client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    _report(stripe_client, meter, customer, 10)

    invoice = stripe_fake.finalize_invoice(customer.id, pay=True)

    assert (invoice["status"], invoice["amount_paid"]) == ("paid", 45)
    assert stripe_webhooks.wait_for("invoice.paid").event["data"]["object"]["id"] == invoice["id"]
    stripe_fake.flush_webhooks()
    deliveries = [d for d in stripe_fake.state()["webhook_deliveries"] if d["status"] == 200]
    assert deliveries


def test_webhook_delivery_is_retried_when_the_receiver_fails(
    stripe_fake, stripe_client, plan, customer
):
    price, _ = plan
    stripe_fake.set_webhook("http://127.0.0.1:9/unreachable")
    sub = stripe_client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}
    )
    stripe_fake.flush_webhooks()
    events = stripe_client.v1.events.list({"type": "customer.subscription.created"}).data
    event_id = next(e.id for e in events if e.data.object.id == sub.id)
    attempts = [d for d in stripe_fake.state()["webhook_deliveries"] if d["event"] == event_id]
    assert len(attempts) > 1 and all(a["status"] is None for a in attempts)


def test_events_are_listed_newest_first(stripe_client, plan, customer):
    price, _ = plan
    before = int(time.time())
    stripe_client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    newest = stripe_client.v1.events.list({"limit": 1}).data[0]
    assert newest.type == "customer.subscription.created" and newest.created >= before
