"""Meter sync against the Stripe emulator: every usage event reaches Stripe exactly once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import MeterLine, UsageEvent
from billing.stripe_gateway import StripeGateway
from billing.sync import meter_identifier, sync_pending
from tenants.models import Tenant
from tests.billing.conftest import ledger_quantities, record_usage, stripe_quantities
from tests.plugins.actors import Actor
from tests.plugins.stripe import StripeEmulator

FAULTS = {
    "path_prefix": "/v1/billing/meter_events",
    "rate_500": 0.2,
    "rate_429": 0.2,
    "drop_after_commit_rate": 0.2,
}
LINES = (("lite", "standard", 9), ("lite", "batch", 5), ("flash", "standard", 6))


def stripe_totals(gateway: StripeGateway, tenant: Tenant, line: str) -> tuple[Decimal, Decimal]:
    """Legacy: (images, amount in cents) Stripe's summaries hold for the tenant's legacy
    line this hour."""
    meter_line = MeterLine.objects.get(line=line)
    now = int(timezone.now().timestamp()) // 60 * 60
    window = {"customer_id": tenant.stripe_customer_id, "start": now - 3600, "end": now + 120}
    images = gateway.meter_event_summary_total(meter_id=meter_line.images_meter_id, **window)
    amount = gateway.meter_event_summary_total(meter_id=meter_line.amount_meter_id, **window)
    return images, amount


def sync_until_nothing_pending(now: dt.datetime, rounds: int = 60) -> None:
    """What the schedule does over time: run, then run again once backoffs are due."""
    for _ in range(rounds):
        if not UsageEvent.objects.filter(stripe_state="pending").exists():
            return
        sync_pending(now=now)
        now += dt.timedelta(hours=2)
    raise AssertionError("usage still pending after many sync rounds")


def make_ledger(tenant: Tenant) -> dict[str, list[UsageEvent]]:
    return {
        f"{tier}_{mode}": record_usage(tenant, tier=tier, mode=mode, n=n) for tier, mode, n in LINES
    }


def assert_stripe_matches_ledger(
    gateway: StripeGateway, tenant: Tenant, ledger: dict[str, list[UsageEvent]]
) -> None:
    tenant.refresh_from_db()
    for line, events in ledger.items():
        assert stripe_quantities(gateway, tenant, line=line) == ledger_quantities(events, line=line)
    everything = [e for events in ledger.values() for e in events]
    markup = stripe_quantities(gateway, tenant, line="markup")
    assert markup == ledger_quantities(everything, line="markup")
    assert sum(markup.values()) == len(everything)
    assert UsageEvent.objects.exclude(stripe_state="sent").count() == 0


@pytest.fixture
def faulty_ledger(
    owner: Actor, stripe_app: StripeEmulator, subscribed: Callable, settings: SettingsWrapper
) -> dict[str, list[UsageEvent]]:
    """20 images on three lines, and Stripe failing often on meter events."""
    # No SDK retries (they sleep): every fault comes back to sync, whose next attempt uses a
    # new Idempotency-Key, so an event committed before a drop answers "already exists".
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    subscribed(owner.tenant)
    ledger = make_ledger(owner.tenant)
    stripe_app.set_faults(**FAULTS, seed=11)
    return ledger


@pytest.mark.django_db
def test_every_usage_event_reaches_stripe_exactly_once_under_faults(
    owner: Actor, gateway: StripeGateway, faulty_ledger: dict[str, list[UsageEvent]]
) -> None:
    ledger = faulty_ledger

    sync_until_nothing_pending(timezone.now())

    assert_stripe_matches_ledger(gateway, owner.tenant, ledger)
    # Faults really happened, and were absorbed by retries rather than by luck.
    assert UsageEvent.objects.filter(stripe_attempts__gt=0).exists()


@pytest.mark.django_db(transaction=True)
def test_two_sync_workers_at_once_still_deliver_each_event_once(
    owner: Actor, gateway: StripeGateway, faulty_ledger: dict[str, list[UsageEvent]]
) -> None:
    ledger = faulty_ledger
    start, errors = threading.Barrier(2), []

    def worker() -> None:
        try:
            start.wait()
            now = timezone.now()
            for _ in range(60):
                sync_pending(now=now, limit=7)
                if not UsageEvent.objects.filter(stripe_state="pending").exists():
                    return
                now += dt.timedelta(hours=2)
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert_stripe_matches_ledger(gateway, owner.tenant, ledger)


@pytest.mark.django_db
def test_answer_dropped_after_commit_is_replayed_by_the_sdk_retry_and_counted_once(
    owner: Actor, stripe_app: StripeEmulator, gateway: StripeGateway, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    events = record_usage(owner.tenant)
    stripe_app.set_faults(
        path_prefix="/v1/billing/meter_events", next_n={"kind": "drop_after_commit", "n": 2}
    )

    report = sync_pending()

    assert report.sent == 1
    assert UsageEvent.objects.get().stripe_attempts == 0  # absorbed inside one attempt
    assert_stripe_matches_ledger(gateway, owner.tenant, {"lite_standard": events})


@pytest.mark.django_db
def test_sync_sends_token_and_markup_events_with_deterministic_identifiers(
    owner: Actor, stripe_app: StripeEmulator, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    (event,) = record_usage(owner.tenant)  # 12 input tokens, 1,120 image tokens, no text

    report = sync_pending()

    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    customer = owner.tenant.stripe_customer_id
    held = {e["identifier"]: e for e in stripe_app.state()["meter_events"]}
    mine = {
        kind: held.get(meter_identifier(customer_id=customer, usage_id=event.pk, kind=kind))
        for kind in ("input", "text_output", "image_output", "markup")
    }
    assert mine["text_output"] is None  # no text tokens: no event
    assert (mine["image_output"]["event_name"], mine["image_output"]["value"]) == (
        "bunch_tokens_lite_standard_image_output_at_30_per_m",
        "1120",
    )
    assert (mine["input"]["event_name"], mine["input"]["value"]) == (
        "bunch_tokens_lite_standard_input_at_0p25_per_m",
        "12",
    )
    assert (mine["markup"]["event_name"], mine["markup"]["value"]) == (
        "bunch_markup_at_0p01_usd",
        "1",
    )
    assert mine["input"]["timestamp"] == int(event.occurred_at.timestamp())
    event.refresh_from_db()
    assert (event.stripe_state, event.stripe_last_error) == ("sent", "")
    assert event.stripe_sent_at is not None


@pytest.mark.django_db
def test_rate_limited_event_stays_pending_with_backoff(
    owner: Actor, stripe_app: StripeEmulator, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    (event,) = record_usage(owner.tenant)
    stripe_app.set_faults(path_prefix="/v1/billing/meter_events", next_n={"kind": "429", "n": 1})
    now = timezone.now()

    report = sync_pending(now=now)
    again = sync_pending(now=now + dt.timedelta(seconds=5))

    assert (report.retrying, again.processed) == (1, 0)  # not due again yet
    event.refresh_from_db()
    assert event.stripe_state == "pending"
    assert event.stripe_attempts == 1
    assert "429" in event.stripe_last_error
    assert (
        now + dt.timedelta(seconds=20)
        <= event.stripe_next_attempt_at
        <= now + dt.timedelta(seconds=30)
    )
    assert sync_pending(now=now + dt.timedelta(minutes=1)).sent == 1


@pytest.mark.django_db
def test_event_stripe_refuses_is_failed_and_shows_why(
    owner: Actor, stripe_app: StripeEmulator, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    (event,) = record_usage(owner.tenant, occurred_at=timezone.now() - dt.timedelta(days=40))

    report = sync_pending()

    assert report.failed == 1
    event.refresh_from_db()
    assert event.stripe_state == "failed"
    assert "timestamp_too_far_in_past" in event.stripe_last_error
    assert sync_pending().processed == 0  # failed rows wait for an operator


@pytest.mark.django_db
def test_tenant_without_stripe_customer_gets_one_on_the_fly(
    owner: Actor, stripe_app: StripeEmulator, subscribed: Callable, tenant_b: Tenant
) -> None:
    subscribed(owner.tenant)
    record_usage(tenant_b, n=2)

    report = sync_pending()

    tenant_b.refresh_from_db()
    assert report.sent == 2
    assert tenant_b.stripe_customer_id.startswith("cus_")
    assert tenant_b.stripe_subscription_id.startswith("sub_")


@pytest.mark.django_db
def test_sync_without_billing_setup_leaves_usage_pending_with_a_reason(
    owner: Actor, stripe_app: StripeEmulator
) -> None:
    (event,) = record_usage(owner.tenant)

    report = sync_pending()

    assert report.skipped == 1
    event.refresh_from_db()
    assert event.stripe_state == "pending"
    assert "billing_setup" in event.stripe_last_error


@pytest.mark.django_db
def test_sync_does_nothing_when_billing_is_disabled(
    owner: Actor, stripe_app: StripeEmulator, settings: SettingsWrapper, subscribed: Callable
) -> None:
    subscribed(owner.tenant)
    record_usage(owner.tenant)
    settings.BILLING_ENABLED = False

    report = sync_pending()

    assert report.processed == 0
    assert UsageEvent.objects.get().stripe_state == "pending"
