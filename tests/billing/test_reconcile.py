"""`billing_reconcile` compares the ledger with Stripe's summaries and repairs shortfalls."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import call_command

from billing.models import UsageEvent
from billing.stripe_gateway import StripeGateway
from billing.sync import meter_identifier, sync_pending
from tests.billing.conftest import ledger_quantities, record_usage, stripe_quantities
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


LITE_IMAGE = "bunch_tokens_lite_standard_image_output_at_30_per_m"
LITE_INPUT = "bunch_tokens_lite_standard_input_at_0p25_per_m"
MARKUP = "bunch_markup_at_0p01_usd"


def test_reconcile_finds_and_fixes_an_event_stripe_lost(
    owner: Actor, synced: list[UsageEvent], gateway: StripeGateway
) -> None:
    lost = synced[0]
    customer = owner.tenant.stripe_customer_id
    for kind, name in (("image_output", LITE_IMAGE), ("input", LITE_INPUT), ("markup", MARKUP)):
        gateway.cancel_meter_event(
            event_name=name,
            identifier=meter_identifier(customer_id=customer, usage_id=lost.pk, kind=kind),
        )
    assert stripe_quantities(gateway, owner.tenant, line="lite_standard")[LITE_IMAGE] == 2240

    found = reconcile()
    fixed = reconcile("--fix")

    rows = [line.split() for line in found.splitlines()]
    assert ["acme", "lite_standard", "image_output", "3360", "2240", "1120", "0"] in rows
    assert ["acme", "lite_standard", "input", "36", "24", "12", "0"] in rows
    assert ["acme", "markup", "markup", "4", "3", "1", "0"] in rows
    assert not any("flash_standard" in row for row in rows)
    assert "fixed: no differences remain" in fixed
    assert stripe_quantities(gateway, owner.tenant) == ledger_quantities(synced)
    assert "no differences" in reconcile("--fix")  # a second repair adds nothing


def test_reconcile_fix_resends_an_event_the_ledger_marked_sent_but_stripe_never_got(
    owner: Actor, subscribed: Callable, gateway: StripeGateway
) -> None:
    subscribed(owner.tenant)
    never_sent = record_usage(owner.tenant, mode="batch")
    UsageEvent.objects.filter(pk=never_sent[0].pk).update(stripe_state="sent")

    fixed = reconcile("--fix")

    assert "resent 3 event(s), sent 0 correction(s)" in fixed  # input, image, markup
    assert stripe_quantities(gateway, owner.tenant) == ledger_quantities(never_sent)


def test_reconcile_since_limits_the_window(synced) -> None:
    output = reconcile("--since", "2020-01-01")

    assert "2020-01-01 00:00" in output
    assert "no differences" in output
