"""Billing fixtures: the app pointed at the Stripe emulator, and ledger rows made through
`billing.services.usage_record` with real Job and Image rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import TokenMeter, UsageEvent
from billing.pricing import cost_of, price_for
from billing.services import usage_record
from billing.setup import tenant_subscription_ensure
from billing.stripe_gateway import StripeGateway
from billing.token_setup import switch_ensure, token_catalog_ensure
from billing.tokens import token_lines
from core.catalog import MODELS, TokenUsage
from generation.models import Image, Job
from tenants.models import Tenant
from tests.plugins.stripe import StripeEmulator

LITE_1K = TokenUsage(input_text_tokens=12, output_image_tokens=1120)

RecordUsage = Callable[..., list[UsageEvent]]


@pytest.fixture
def stripe_app(stripe_fake: StripeEmulator, settings: SettingsWrapper) -> StripeEmulator:
    """The app's settings pointed at the emulator; billing on."""
    settings.STRIPE_API_KEY = stripe_fake.api_key
    settings.STRIPE_API_BASE = stripe_fake.api_base
    settings.BILLING_ENABLED = True
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_billing"
    return stripe_fake


@pytest.fixture
def gateway(stripe_app: StripeEmulator) -> StripeGateway:
    return StripeGateway(stripe_app.api_key, api_base=stripe_app.api_base)


_CATALOG: dict[str, list[dict[str, object]]] = {}


def catalog_ensure(gateway: StripeGateway, key: str) -> None:
    """The token catalog (`token_catalog_ensure`) once per emulator (``key``); later tests
    copy its ids: the catalog persists in the emulator while each test's database starts
    empty. Meters a test's own plans or prices need are made as the app makes them."""
    if key not in _CATALOG:
        meters = token_catalog_ensure(gateway=gateway)
        _CATALOG[key] = [
            {f.name: getattr(m, f.name) for f in TokenMeter._meta.fields if f.name != "id"}
            for m in meters
        ]
    known = set(TokenMeter.objects.values_list("event_name", flat=True))
    TokenMeter.objects.bulk_create(
        TokenMeter(**values) for values in _CATALOG[key] if values["event_name"] not in known
    )
    switch_ensure()


@pytest.fixture
def subscribed(gateway: StripeGateway, stripe_app: StripeEmulator) -> Callable[[Tenant], Tenant]:
    """Make a tenant a Stripe customer subscribed to every line (what billing_setup does)."""

    def subscribe(tenant: Tenant) -> Tenant:
        catalog_ensure(gateway, stripe_app.api_base)
        tenant_subscription_ensure(tenant=tenant, gateway=gateway)
        return tenant

    return subscribe


def record_usage(
    tenant: Tenant,
    *,
    tier: str = "lite",
    mode: str = "standard",
    n: int = 1,
    usage: TokenUsage = LITE_1K,
    occurred_at: dt.datetime | None = None,
) -> list[UsageEvent]:
    """``n`` stored images of one job and their ledger rows, as the pipeline writes them."""
    spec = MODELS[tier]
    job = Job.objects.create(
        tenant=tenant, prompt="p", model_prompt="p", aspect_ratio="1:1", tier=tier, mode=mode,
        count=n, status=Job.Status.SUCCEEDED,
    )  # fmt: skip
    price = price_for(model=spec.model_id, mode=mode)
    cost = cost_of(usage=usage, price=price, markup=tenant.plan.markup_per_image)
    events = []
    for index in range(n):
        image = Image.objects.create(
            tenant=tenant, job=job, index=index, file=f"test/{uuid.uuid4()}.png",
            mime_type="image/png", width=1024, height=1024, size_bytes=1, sha256="0" * 64,
        )  # fmt: skip
        events.append(
            usage_record(
                tenant_id=job.tenant_id,
                job_id=job.pk,
                image_id=image.pk,
                tier=job.tier,
                mode=job.mode,
                usage=usage,
                model=spec.model_id,
                cost=cost,
                occurred_at=occurred_at,
            )
        )
    return events


@pytest.fixture
def usage_factory(db: None) -> RecordUsage:
    return record_usage


def ledger_cents(events: list[UsageEvent]) -> Decimal:
    return sum((e.billed for e in events), Decimal(0)) * 100


def stripe_quantities(
    gateway: StripeGateway, tenant: Tenant, *, line: str | None = None
) -> dict[str, Decimal]:
    """What Stripe's summaries hold for the tenant over the last hour, per token meter
    (event name), of one line (`lite_standard`, or `markup`) or all; zeros left out."""
    tenant.refresh_from_db()
    now = int(timezone.now().timestamp()) // 60 * 60
    held = {}
    for meter in TokenMeter.objects.all():
        name = f"{meter.tier}_{meter.mode}" if meter.tier else "markup"
        if line is not None and name != line:
            continue
        value = gateway.meter_event_summary_total(
            meter_id=meter.meter_id,
            customer_id=tenant.stripe_customer_id,
            start=now - 3600,
            end=now + 120,
        )
        if value:
            held[meter.event_name] = value
    return held


def ledger_quantities(events: list[UsageEvent], *, line: str | None = None) -> dict[str, Decimal]:
    """What the token meters should hold for these usage events, per event name."""
    rows = UsageEvent.objects.filter(pk__in=[e.pk for e in events])
    return {
        t.key.event_name: Decimal(t.quantity)
        for t in token_lines(rows)
        if line is None or (f"{t.key.tier}_{t.key.mode}" if t.key.tier else "markup") == line
    }
