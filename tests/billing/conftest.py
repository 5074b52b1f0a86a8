"""Billing fixtures: the app pointed at the Stripe emulator, and ledger rows made through
`billing.services.usage_record` with real Job and Image rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import MeterLine, UsageEvent
from billing.pricing import cost_of, price_for
from billing.services import usage_record
from billing.setup import lines_ensure, tenant_subscription_ensure
from billing.stripe_gateway import StripeGateway
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
    """`lines_ensure` once per emulator (``key``); later tests copy its ids: the catalog
    persists in the emulator while each test's database starts empty."""
    if key not in _CATALOG:
        lines = lines_ensure(gateway=gateway)
        _CATALOG[key] = [
            {f.name: getattr(line, f.name) for f in MeterLine._meta.fields if f.name != "id"}
            for line in lines
        ]
    elif not MeterLine.objects.exists():
        MeterLine.objects.bulk_create(MeterLine(**values) for values in _CATALOG[key])


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
