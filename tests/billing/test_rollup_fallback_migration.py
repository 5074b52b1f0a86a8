"""Migration billing.0008: rollups folded before the fallback keys existed stay exact —
the fallback events leave their old rows, unmarked, and the next fold adds them back
under the tier asked for and the reason."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from billing.models import UsageEvent, UsageRollup
from billing.rollups import usage_rollup_fold_all, usage_rollup_mismatches
from generation.models import Image, Job
from tenants.models import Plan, Tenant
from tests.plugins.migrations import migrate_to, migrate_to_latest

BEFORE = ("billing", "0008_token_meters")
AFTER = ("billing", "0009_usage_rollup_fallbacks")
DAY = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


def _event(apps: Any, tenant: Any, job: Any, index: int, *, reason: str) -> Any:
    image = Image.objects.create(
        tenant=tenant, job=job, index=index, file=f"t/{uuid.uuid4()}.png",
        mime_type="image/png", width=1, height=1, size_bytes=1, sha256="0" * 64,
        requested_tier="flash" if reason else "lite", served_tier="lite", fallback_reason=reason,
    )  # fmt: skip
    return apps.get_model("billing", "UsageEvent").objects.create(
        tenant_id=tenant.pk, job_id=job.pk, image_id=image.pk, tier="lite", model="m",
        mode="standard",
        output_image_tokens=1120, provider_cost=Decimal("0.0336"), markup=Decimal("0.01"),
        billed=Decimal("0.0436"), occurred_at=DAY, rolled_up=True,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_fallback_events_folded_before_the_migration_are_refolded_under_their_key() -> None:
    apps = migrate_to(BEFORE)
    # Only billing goes back to 0007: the other apps' tables are today's.
    plan = Plan.objects.create(name="Old", slug="old", monthly_image_quota=10, monthly_spend_cap=1)
    tenant = Tenant.objects.create(name="A", slug="a", plan=plan)
    job = Job.objects.create(
        tenant=tenant, prompt="p", model_prompt="p", aspect_ratio="1:1", status="succeeded"
    )
    for index, reason in enumerate(["", "", "primary_throttled"]):
        _event(apps, tenant, job, index, reason=reason)
    # As the fold of 0007 left them: all three in the day's one row.
    apps.get_model("billing", "UsageRollup").objects.create(
        tenant_id=tenant.pk, day=DAY.date(), tier="lite", model="m", mode="standard", images=3,
        output_image_tokens=3360, provider_cost=Decimal("0.1008"), billed=Decimal("0.1308"),
    )  # fmt: skip
    try:
        after = migrate_to(AFTER)
        unmarked = list(
            UsageEvent.objects.filter(rolled_up=False).values_list(
                "image__fallback_reason", flat=True
            )
        )
        kept = list(
            after.get_model("billing", "UsageRollup").objects.values_list(
                "fallback_reason", "images", "billed"
            )
        )
        # The later migrations (rates in the key) before the check and fold of today's code.
        migrate_to_latest()
        exact_meanwhile = usage_rollup_mismatches()
        usage_rollup_fold_all()
        refolded = sorted(
            UsageRollup.objects.values_list("requested_tier", "fallback_reason", "images")
        )
        exact_after = usage_rollup_mismatches()
    finally:
        migrate_to_latest()

    assert unmarked == ["primary_throttled"]
    assert kept == [("", 2, Decimal("0.087200000"))]
    assert exact_meanwhile == [] and exact_after == []
    assert refolded == [("", "", 2), ("flash", "primary_throttled", 1)]
