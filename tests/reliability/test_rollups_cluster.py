"""Usage rollups folded while a real cluster stores images, with the price book changed
mid-run: still equal to the ledger, and so are the invoice's token lines per rate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db.models import Count, Sum
from django.utils import timezone

from billing.models import Price, UsageEvent
from billing.pricing import price_for
from billing.rollups import usage_rollup_fold, usage_rollup_fold_all, usage_rollup_mismatches
from billing.selectors import token_lines_in, usage_in
from billing.tokens import token_lines
from generation.models import Image, Job
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator

pytestmark = pytest.mark.cluster
GENERATIONS = "/api/v1/generations"
LITE = "gemini-3.1-flash-lite-image"


def test_rollups_equal_the_ledger_after_a_concurrent_run_with_cancels_and_retries(
    cluster_factory: Callable[..., Cluster], owner: Actor, gemini: GeminiEmulator
) -> None:
    gemini.configure(latency=0.15, jitter=0.1)
    gemini.set_faults(rate_500=0.2, rate_429=0.1, retry_delay_s=0.05)
    # Lite throttled more often: with a fallback policy some images are served by flash,
    # and their rollups carry the tier asked for and the reason.
    gemini.set_faults(model=LITE, rate_429=0.3, retry_delay_s=0.05)
    folded: list[int] = []

    def fold_then_finished() -> bool:
        folded.append(usage_rollup_fold(limit=3))  # small folds, racing the stores
        return not Job.objects.exclude(status__in=Job.FINISHED).exists()

    try:
        api = owner.api()
        policy = {"models": ["flash"], "max_price_per_image": "0.10", "after_s": 0}
        assert api.put("/api/v1/settings/fallback", policy, format="json").status_code == 200
        price_for(model=LITE, mode="standard")  # the price book's row, to change mid-run
        ids = [
            api.post(
                GENERATIONS, {"prompt": f"asset {n}", "count": n % 4 + 1}, format="json"
            ).json()["id"]
            for n in range(24)
        ]
        for job_id in ids[1::8]:  # canceled while queued: no worker runs yet
            assert api.post(f"{GENERATIONS}/{job_id}/cancel").status_code == 200
        cluster_factory()
        wait_until(lambda: UsageEvent.objects.filter(model=LITE).exists(), 60, "a lite image")
        # A price-book change while the cluster stores: later images bill at the new rate.
        Price.objects.filter(model=LITE, mode="standard").update(
            image_output_per_million=Decimal("24")
        )
        for job_id in ids[5::8]:
            # 200: canceled while queued; 202: a worker had claimed it, it stops before its
            # next image; 409: it had already finished (the running workers race the
            # cancels, as a tenant's would).
            assert api.post(f"{GENERATIONS}/{job_id}/cancel").status_code in (200, 202, 409)
        wait_until(fold_then_finished, 120, "every job to finish, folding meanwhile")
    finally:
        gemini.clear_faults()
        gemini.configure(latency=0, jitter=0)
    usage_rollup_fold_all()

    assert sum(folded) > 0
    assert Job.objects.filter(cancel_requested=True).exists()
    assert usage_rollup_mismatches() == []
    ledger = UsageEvent.objects.filter(tenant=owner.tenant).aggregate(billed=Sum("billed"))
    total = api.get("/api/v1/usage", {"group_by": "mode"}).json()["total"]
    assert total["images"] == UsageEvent.objects.count() == Image.objects.count()
    # To the nano-dollar (on SQLite a sum of decimal columns is a sum of floats).
    assert Decimal(total["billed"]) == ledger["billed"].quantize(Decimal("1e-9"))
    assert not UsageEvent.objects.filter(rolled_up=False).exists()
    # The fallbacks the usage API reads from the rollups are the ledger's and images'.
    served_by_fallback = (
        UsageEvent.objects.filter(tenant=owner.tenant, image__fallback_reason__gt="")
        .values_list("image__requested_tier", "tier", "image__fallback_reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    fallbacks = api.get("/api/v1/usage", {"group_by": "day"}).json()["fallbacks"]
    by_key: dict[tuple[str, str, str], int] = {}
    for f in fallbacks:
        key = (f["requested_model"], f["served_model"], f["reason"])
        by_key[key] = by_key.get(key, 0) + f["images"]
    assert by_key == {(r, s, why): n for r, s, why, n in served_by_fallback}
    # The invoice's token lines, per line and rate, from the rollups: the ledger's.
    start, end = timezone.now() - dt.timedelta(days=1), timezone.now() + dt.timedelta(days=1)
    lite_rates = UsageEvent.objects.filter(model=LITE).order_by().values("image_output_per_million")
    assert lite_rates.distinct().count() == 2
    ledger_lines = token_lines(usage_in(owner.tenant, start=start, end=end))
    assert token_lines_in(owner.tenant, start=start, end=end) == ledger_lines
