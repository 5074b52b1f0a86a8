"""`billing_reconcile` compares the ledger with Stripe's summaries and repairs shortfalls."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command

from billing.models import UsageEvent
from billing.stripe_gateway import StripeGateway
from billing.sync import meter_identifier, sync_pending
from tests.billing.conftest import record_usage
from tests.billing.test_sync import stripe_totals
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db


def reconcile(*args: str) -> str:
    out = io.StringIO()
    call_command("billing_reconcile", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def synced(owner: Actor, subscribed: Callable) -> list[UsageEvent]:
    subscribed(owner.tenant)
    events = record_usage(owner.tenant, n=3) + record_usage(owner.tenant, tier="flash")
    assert sync_pending().sent == 4
    owner.tenant.refresh_from_db()
    return events


def test_reconcile_reports_no_differences_when_stripe_matches_the_ledger(synced) -> None:
    output = reconcile()

    assert "no differences" in output


def test_reconcile_finds_and_fixes_an_event_stripe_lost(
    owner: Actor, synced: list[UsageEvent], gateway: StripeGateway
) -> None:
    lost = synced[0]
    customer = owner.tenant.stripe_customer_id
    for kind in ("images", "amount"):
        gateway.cancel_meter_event(
            event_name=f"bunch_{kind}_lite_standard",
            identifier=meter_identifier(customer_id=customer, usage_id=lost.pk, kind=kind),
        )
    assert stripe_totals(gateway, owner.tenant, "lite_standard")[0] == 2

    found = reconcile()
    fixed = reconcile("--fix")

    rows = [line.split() for line in found.splitlines()]
    assert ["acme", "lite_standard", "images", "3", "2", "1", "0"] in rows
    assert ["acme", "lite_standard", "amount", "13.0809", "8.7206", "4.3603", "0"] in rows
    assert not any("flash_standard" in row for row in rows)
    assert "fixed: no differences remain" in fixed
    assert stripe_totals(gateway, owner.tenant, "lite_standard") == (3, lost.billed * 300)
    assert "no differences" in reconcile("--fix")  # a second repair adds nothing


def test_reconcile_fix_resends_an_event_the_ledger_marked_sent_but_stripe_never_got(
    owner: Actor, subscribed: Callable, gateway: StripeGateway
) -> None:
    subscribed(owner.tenant)
    (never_sent,) = record_usage(owner.tenant, mode="batch")
    UsageEvent.objects.filter(pk=never_sent.pk).update(stripe_state="sent")

    fixed = reconcile("--fix")

    assert "resent 2 event(s), sent 0 correction(s)" in fixed
    assert stripe_totals(gateway, owner.tenant, "lite_batch") == (1, never_sent.billed * 100)


def test_reconcile_since_limits_the_window(synced) -> None:
    output = reconcile("--since", "2020-01-01")

    assert "2020-01-01 00:00" in output
    assert "no differences" in output
