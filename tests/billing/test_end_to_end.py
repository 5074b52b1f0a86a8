"""Images generated through the API end up on Stripe's meters, as the ledger says."""

from __future__ import annotations

import io
from collections.abc import Callable

import django_q.conf
import pytest
from django.core.management import call_command

from billing.models import UsageEvent
from billing.stripe_gateway import StripeGateway
from billing.tasks import sync_usage
from tests.billing.conftest import ledger_cents, ledger_quantities, stripe_quantities
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator


def test_generated_images_are_metered_billed_and_reconciled(
    inline_worker: GeminiEmulator,
    owner: Actor,
    gateway: StripeGateway,
    subscribed: Callable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    subscribed(owner.tenant)
    job = owner.api().post(
        "/api/v1/generations", {"prompt": "two avatars", "count": 2}, format="json",
        HTTP_PREFER="wait=10",
    ).json()  # fmt: skip
    assert job["status"] == "succeeded"

    assert sync_usage().startswith("sent 2,")

    events = list(UsageEvent.objects.filter(job_id=job["id"]))
    assert stripe_quantities(gateway, owner.tenant) == ledger_quantities(events)
    preview = gateway.invoice_preview(customer_id=owner.tenant.stripe_customer_id)
    estimate = owner.api().get("/api/v1/billing/invoice").json()
    assert preview.total_cents == estimate["total_cents"]
    assert abs(preview.total_cents - ledger_cents(events)) < len(estimate["lines"])
    out = io.StringIO()
    call_command("billing_reconcile", stdout=out)
    assert "no differences" in out.getvalue()
