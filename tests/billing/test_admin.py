"""Operators see the ledger and its Stripe state, read-only, and can resend failed rows."""

from __future__ import annotations

import pytest
from django.test import Client
from django_q.models import Schedule

from billing.models import UsageEvent
from tests.billing.conftest import record_usage
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db
LEDGER = "/admin/billing/usageevent/"


@pytest.fixture
def failed(owner: Actor) -> UsageEvent:
    (event,) = record_usage(owner.tenant)
    UsageEvent.objects.filter(pk=event.pk).update(
        stripe_state="failed", stripe_last_error="meter_event_customer_not_found"
    )
    return event


def test_ledger_lists_filters_and_shows_a_row_read_only(admin_client: Client, failed) -> None:
    listed = admin_client.get(LEDGER, {"stripe_state__exact": "failed", "mode__exact": "standard"})
    detail = admin_client.get(f"{LEDGER}{failed.pk}/change/")

    assert listed.status_code == 200
    assert f"{LEDGER}{failed.pk}/change/".encode() in listed.content
    assert detail.status_code == 200
    assert b"meter_event_customer_not_found" in detail.content
    assert b'name="billed"' not in detail.content  # money is never an input
    assert f"{LEDGER}add/".encode() not in listed.content  # nobody adds ledger rows by hand


def test_resend_action_puts_failed_rows_back_to_pending(
    admin_client: Client, failed: UsageEvent, owner: Actor
) -> None:
    (sent,) = record_usage(owner.tenant)
    UsageEvent.objects.filter(pk=sent.pk).update(stripe_state="sent")

    response = admin_client.post(
        LEDGER, {"action": "resend_to_stripe", "_selected_action": [failed.pk, sent.pk]}
    )

    assert response.status_code == 302
    states = dict(UsageEvent.objects.values_list("pk", "stripe_state"))
    assert states == {failed.pk: "pending", sent.pk: "sent"}
    failed.refresh_from_db()
    assert (failed.stripe_last_error, failed.stripe_next_attempt_at) == ("", None)


def test_price_book_is_editable_and_webhook_log_is_not(admin_client: Client) -> None:
    price_page = admin_client.get("/admin/billing/price/1/change/")
    log = admin_client.get("/admin/billing/stripewebhookevent/")

    assert b'name="image_output_per_million"' in price_page.content
    assert log.status_code == 200
    assert b"/admin/billing/stripewebhookevent/add/" not in log.content


def test_sync_runs_every_minute_on_the_schedule() -> None:
    schedule = Schedule.objects.get(name="billing.sync")

    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "billing.tasks.sync_usage",
        Schedule.MINUTES,
        1,
    )


def test_the_ledger_without_a_search_lists_sent_rows_too(
    admin_client: Client, owner: Actor, failed: UsageEvent
) -> None:
    sent, pending = record_usage(owner.tenant, n=2)
    UsageEvent.objects.filter(pk=sent.pk).update(stripe_state="sent")

    listed = admin_client.get(LEDGER)
    searched = admin_client.get(LEDGER, {"q": "customer_not_found"})

    assert {row.pk for row in listed.context["cl"].result_list} == {
        sent.pk,
        pending.pk,
        failed.pk,
    }
    assert [row.pk for row in searched.context["cl"].result_list] == [failed.pk]
