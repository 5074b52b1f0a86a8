"""Migration billing.0010: rollups folded before the rates were in their key take the rates
of their day's key where it had one set of rates; a day's key priced at several rates
leaves the rollups, its events unmarked, and the next fold adds them back per rate.
Exact throughout, and backwards one row per old key again."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from billing.models import UsageEvent, UsageRollup
from billing.rollups import UNRATED, usage_rollup_fold_all, usage_rollup_mismatches
from billing.selectors import token_lines_in, usage_in
from billing.tokens import token_lines
from generation.models import Image, Job
from tenants.models import Plan, Tenant
from tests.plugins.migrations import migrate_to, migrate_to_latest

BEFORE = ("billing", "0009_usage_rollup_fallbacks")
DAY = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
NEXT = DAY + dt.timedelta(days=1)
OLD_KEY = ("day", "tier", "model", "mode", "requested_tier", "fallback_reason")


def _event(apps: Any, job: Any, *, at: dt.datetime, rate: str | None, reason: str = "") -> Any:
    image = Image.objects.create(
        tenant=job.tenant, job=job, index=Image.objects.filter(job=job).count(),
        file=f"t/{uuid.uuid4()}.png", mime_type="image/png", width=1, height=1, size_bytes=1,
        sha256="0" * 64, requested_tier="flash" if reason else "lite", served_tier="lite",
        fallback_reason=reason,
    )  # fmt: skip
    provider = Decimal(rate or 30) * 1120 / 1_000_000
    return apps.get_model("billing", "UsageEvent").objects.create(
        tenant_id=job.tenant_id, job_id=job.pk, image_id=image.pk, tier="lite", model="m",
        mode="standard", output_image_tokens=1120, provider_cost=provider,
        markup=Decimal("0.01"), billed=provider + Decimal("0.01"),
        input_per_million=Decimal("0.25") if rate else None,
        text_output_per_million=Decimal("1.5") if rate else None,
        image_output_per_million=Decimal(rate) if rate else None,
        occurred_at=at, rolled_up=True,
    )  # fmt: skip


def _fold_as_0009(apps: Any) -> None:
    """The rollups as the fold of 0009 left them: one row per old key."""
    Rollup = apps.get_model("billing", "UsageRollup")
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in UsageEvent.objects.select_related("image").order_by("pk"):
        reason = e.image.fallback_reason
        key = (e.tenant_id, e.occurred_at.date(), e.tier, e.model, e.mode,
               e.image.requested_tier if reason else "", reason)  # fmt: skip
        row = rows.setdefault(key, {"images": 0, "output_image_tokens": 0,
                                    "provider_cost": Decimal(0), "billed": Decimal(0)})  # fmt: skip
        row["images"] += 1
        row["output_image_tokens"] += e.output_image_tokens
        row["provider_cost"] += e.provider_cost
        row["billed"] += e.billed
    for (tenant_id, *key), sums in rows.items():
        Rollup.objects.create(tenant_id=tenant_id, **dict(zip(OLD_KEY, key, strict=True)), **sums)


@pytest.mark.django_db(transaction=True)
def test_rollups_take_their_days_rates_or_are_refolded_per_rate() -> None:
    apps = migrate_to(BEFORE)
    plan = Plan.objects.create(name="Old", slug="old", monthly_image_quota=10, monthly_spend_cap=1)
    tenant = Tenant.objects.create(name="A", slug="a", plan=plan)
    job = Job.objects.create(
        tenant=tenant, prompt="p", model_prompt="p", aspect_ratio="1:1", status="succeeded"
    )
    # DAY: one set of rates (and a fallback row); NEXT: the image rate changed at 18:00;
    # the day after: an image from before token billing.
    for _ in range(2):
        _event(apps, job, at=DAY, rate="30")
    _event(apps, job, at=DAY, rate="30", reason="primary_throttled")
    _event(apps, job, at=NEXT, rate="30")
    _event(apps, job, at=NEXT + dt.timedelta(hours=6), rate="24")
    _event(apps, job, at=NEXT + dt.timedelta(days=1), rate=None)
    _fold_as_0009(apps)
    start, end = DAY.replace(hour=0), DAY.replace(hour=0) + dt.timedelta(days=3)
    try:
        migrate_to_latest()
        rates = sorted(
            UsageRollup.objects.values_list(
                "day", "fallback_reason", "image_output_per_million", "markup", "images"
            )
        )
        unmarked = sorted(
            UsageEvent.objects.filter(rolled_up=False).values_list(
                "image_output_per_million", flat=True
            )
        )
        exact_meanwhile = usage_rollup_mismatches()
        lines_meanwhile = token_lines_in(tenant, start=start, end=end)
        usage_rollup_fold_all()
        refolded = sorted(
            UsageRollup.objects.filter(day=NEXT.date()).values_list(
                "image_output_per_million", "images"
            )
        )
        exact_after = usage_rollup_mismatches()
        lines_after = token_lines_in(tenant, start=start, end=end)
        back = migrate_to(BEFORE)
        merged = sorted(
            back.get_model("billing", "UsageRollup").objects.values_list("day", "images")
        )
    finally:
        migrate_to_latest()

    markup = Decimal("0.01")
    assert rates == [
        (DAY.date(), "", Decimal(30), markup, 2),
        (DAY.date(), "primary_throttled", Decimal(30), markup, 1),
        ((NEXT + dt.timedelta(days=1)).date(), "", UNRATED, markup, 1),
    ]
    assert unmarked == [Decimal(24), Decimal(30)]
    assert exact_meanwhile == [] and exact_after == []
    assert refolded == [(Decimal(24), 1), (Decimal(30), 1)]
    ledger = token_lines(usage_in(tenant, start=start, end=end))
    assert lines_meanwhile == lines_after == ledger
    assert merged == [(DAY.date(), 1), (DAY.date(), 2), (NEXT.date(), 2),
                      ((NEXT + dt.timedelta(days=1)).date(), 1)]  # fmt: skip
