"""Usage rollups folded while a real cluster stores images: still equal to the ledger."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import UsageEvent
from billing.rollups import usage_rollup_fold, usage_rollup_fold_all, usage_rollup_mismatches
from generation.models import Image, Job
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster
GENERATIONS = "/api/v1/generations"


def test_rollups_equal_the_ledger_after_a_concurrent_run_with_cancels_and_retries(
    cluster_factory: Callable[..., Cluster], owner: Actor, gemini: GeminiEmulator
) -> None:
    gemini.configure(latency=0.15, jitter=0.1)
    gemini.set_faults(rate_500=0.2, rate_429=0.1, retry_delay_s=0.05)
    folded: list[int] = []

    def fold_then_finished() -> bool:
        folded.append(usage_rollup_fold(limit=3))  # small folds, racing the stores
        return not Job.objects.exclude(status__in=Job.FINISHED).exists()

    try:
        cluster_factory()
        api = owner.api()
        ids = [
            api.post(
                GENERATIONS, {"prompt": f"asset {n}", "count": n % 4 + 1}, format="json"
            ).json()["id"]
            for n in range(24)
        ]
        for job_id in ids[1::4]:
            assert api.post(f"{GENERATIONS}/{job_id}/cancel").status_code == 200
        wait_until(fold_then_finished, 120, "every job to finish, folding meanwhile")
    finally:
        gemini.clear_faults()
        gemini.configure(latency=0, jitter=0)
    usage_rollup_fold_all()

    assert sum(folded) > 0
    assert Job.objects.filter(status="canceled").exists()
    assert usage_rollup_mismatches() == []
    ledger = UsageEvent.objects.filter(tenant=owner.tenant).aggregate(billed=Sum("billed"))
    total = api.get("/api/v1/usage", {"group_by": "mode"}).json()["total"]
    assert total["images"] == UsageEvent.objects.count() == Image.objects.count()
    assert Decimal(total["billed"]) == ledger["billed"]
    assert not UsageEvent.objects.filter(rolled_up=False).exists()
