"""Usage totals from daily rollups plus the unfolded ledger: always equal to the ledger."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.test import Client
from django.utils import timezone

from billing.models import UsageEvent, UsageRollup
from billing.rollups import usage_rollup_fold, usage_rollup_fold_all, usage_rollup_mismatches
from billing.rollups import usage_totals as rollup_totals
from generation.models import Image
from generation.providers.types import TokenUsage
from tests.billing.conftest import record_usage
from tests.plugins.actors import PASSWORD, Actor

pytestmark = pytest.mark.django_db
USAGE = "/api/v1/usage"
NOON = timezone.now().astimezone(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
DAYS = [NOON - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
RANGE = {"from": DAYS[0].date().isoformat(), "to": DAYS[-1].date().isoformat()}


@pytest.fixture
def ledger(owner: Actor, outsider: Actor) -> None:
    """Usage over four days, three models and both modes, and the outsider's."""
    for n, day in enumerate(DAYS):
        record_usage(owner.tenant, n=n + 1, occurred_at=day)
        record_usage(
            owner.tenant, tier="flash", mode="batch", occurred_at=day + dt.timedelta(hours=n)
        )
        record_usage(
            owner.tenant,
            tier="pro",
            usage=TokenUsage(
                input_text_tokens=7 * n, input_image_tokens=1120, output_image_tokens=1120
            ),
            occurred_at=day - dt.timedelta(hours=11, minutes=59),
        )
    record_usage(outsider.tenant, tier="pro", n=5, occurred_at=DAYS[1])


def _ledger_sum(tenant: Any, **filters: Any) -> dict[str, Any]:
    return UsageEvent.objects.filter(tenant=tenant, **filters).aggregate(
        images=Count("pk"), billed=Sum("billed"), provider_cost=Sum("provider_cost")
    )


def _usage(actor: Actor, group_by: str) -> dict[str, Any]:
    response = actor.api().get(USAGE, {**RANGE, "group_by": group_by})
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


def test_usage_api_answers_the_same_before_during_and_after_the_fold(
    owner: Actor, ledger: None
) -> None:
    before = {group: _usage(owner, group) for group in ("day", "model", "mode")}
    usage_rollup_fold(limit=7)  # part of the ledger folded, the rest still a tail
    assert UsageEvent.objects.filter(rolled_up=False).exists()
    during = {group: _usage(owner, group) for group in ("day", "model", "mode")}
    usage_rollup_fold_all()
    after = {group: _usage(owner, group) for group in ("day", "model", "mode")}

    assert before == during == after
    ledger = _ledger_sum(owner.tenant)
    assert after["day"]["total"]["images"] == ledger["images"] == 18
    assert Decimal(after["day"]["total"]["billed"]) == ledger["billed"]
    assert Decimal(after["model"]["total"]["provider_cost"]) == ledger["provider_cost"]
    assert [g["images"] for g in after["day"]["groups"]] == [3, 4, 5, 6]
    assert usage_rollup_mismatches() == []


def test_usage_recorded_after_a_fold_counts_at_once(owner: Actor, ledger: None) -> None:
    usage_rollup_fold_all()
    [event] = record_usage(owner.tenant, tier="pro", occurred_at=DAYS[-1])

    body = _usage(owner, "day")

    ledger = _ledger_sum(owner.tenant)
    assert body["total"]["images"] == ledger["images"] == 19
    assert Decimal(body["total"]["billed"]) == ledger["billed"]
    assert not UsageEvent.objects.get(pk=event.pk).rolled_up
    assert usage_rollup_fold_all() == 1
    assert _usage(owner, "day") == body


def test_a_fold_run_again_or_overlapping_adds_nothing_twice(owner: Actor, ledger: None) -> None:
    assert usage_rollup_fold_all() == 23
    assert usage_rollup_fold_all() == 0
    assert usage_rollup_fold() == 0

    assert usage_rollup_mismatches() == []
    total = UsageRollup.objects.filter(tenant=owner.tenant).aggregate(n=Sum("images"))["n"]
    assert total == 18


def test_a_range_inside_days_counts_only_the_ledger_rows_in_it(owner: Actor, ledger: None) -> None:
    usage_rollup_fold_all()
    start, end = DAYS[0] + dt.timedelta(hours=1), DAYS[-1] - dt.timedelta(hours=11, minutes=58)

    rows = rollup_totals(owner.tenant, start=start, end=end, keys=["model", "mode"])

    expected = (
        UsageEvent.objects.filter(tenant=owner.tenant, occurred_at__gte=start, occurred_at__lt=end)
        .values("model", "mode")
        .annotate(images=Count("pk"), billed=Sum("billed"))
        .order_by("model", "mode")
    )
    assert [(r["model"], r["mode"], r["images"], r["billed"]) for r in rows] == [
        (e["model"], e["mode"], e["images"], e["billed"]) for e in expected
    ]


def test_another_tenants_usage_is_never_in_the_totals(
    owner: Actor, outsider: Actor, ledger: None
) -> None:
    usage_rollup_fold_all()

    theirs = _usage(outsider, "model")

    assert theirs["total"]["images"] == 5
    assert [g["key"] for g in theirs["groups"]] == ["gemini-3-pro-image"]
    assert _usage(owner, "model")["total"]["images"] == 18


def test_invoice_estimate_and_dashboard_read_the_rollups_exactly(
    owner: Actor, ledger: None
) -> None:
    usage_rollup_fold_all()
    first = NOON.replace(day=1)
    ledger = _ledger_sum(owner.tenant, occurred_at__gte=first.replace(hour=0))

    invoice = owner.api().get("/api/v1/billing/invoice").json()
    dashboard = Client()
    assert dashboard.login(username=owner.user.username, password=PASSWORD)
    page = dashboard.get("/usage/")

    # Each image is on one markup line (token lines count the images with such tokens).
    markup = [line for line in invoice["lines"] if line["kind"] == "markup"]
    assert sum(line["images"] for line in markup) == ledger["images"]
    assert page.status_code == 200
    assert page.context["chart"]["total"] == ledger["images"]


def test_the_check_reports_a_rollup_that_differs_from_the_ledger(
    owner: Actor, ledger: None
) -> None:
    usage_rollup_fold_all()
    row = UsageRollup.objects.filter(tenant=owner.tenant).order_by("day").first()
    assert row is not None
    UsageRollup.objects.filter(pk=row.pk).update(billed=row.billed + Decimal("0.000000001"))

    [mismatch] = usage_rollup_mismatches(tenant=owner.tenant)

    assert mismatch["key"] == (
        owner.tenant.pk, row.day, row.tier, row.model, row.mode, "", "",
        row.input_per_million, row.text_output_per_million, row.image_output_per_million,
        row.markup,
    )  # fmt: skip
    assert mismatch["rollup"]["billed"] - mismatch["ledger"]["billed"] == Decimal("0.000000001")


def test_the_check_command_folds_then_says_the_rollups_equal_the_ledger(
    owner: Actor, ledger: None
) -> None:
    out = io.StringIO()
    call_command("usage_rollup_check", "--fold", stdout=out)

    assert out.getvalue().splitlines() == ["folded 23 usage event(s)", "rollups equal the ledger"]


def test_the_check_command_fails_on_a_rollup_that_differs(owner: Actor, ledger: None) -> None:
    usage_rollup_fold_all()
    UsageRollup.objects.filter(tenant=owner.tenant).update(images=0)

    with pytest.raises(CommandError, match="differ from the ledger"):
        call_command("usage_rollup_check", "--tenant", owner.tenant.slug, stdout=io.StringIO())


def test_a_scheduled_fold_stops_after_its_batches(owner: Actor, ledger: None) -> None:
    assert usage_rollup_fold_all(limit=2, max_batches=3) == 6
    assert UsageEvent.objects.filter(rolled_up=False).count() == 23 - 6


def _served_by_fallback(events: list[UsageEvent], *, requested: str, reason: str) -> None:
    """As the store path records a fallback: on the image, the tier asked for and why."""
    Image.objects.filter(pk__in=[e.image_id for e in events]).update(
        requested_tier=requested, served_tier=events[0].tier, fallback_reason=reason
    )


def _ledger_fallbacks(tenant: Any) -> list[dict[str, Any]]:
    """The fallbacks summed from the ledger and the images, as the API showed them before
    the rollups held them: the reference."""
    rows = (
        UsageEvent.objects.filter(tenant=tenant, image__fallback_reason__gt="")
        .annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("day", "image__requested_tier", "tier", "image__fallback_reason")
        .annotate(images=Count("pk"), billed=Sum("billed"))
        .order_by("day", "image__requested_tier", "tier", "image__fallback_reason")
    )
    return [
        {
            "day": r["day"].isoformat(),
            "requested_model": r["image__requested_tier"],
            "served_model": r["tier"],
            "reason": r["image__fallback_reason"],
            "images": r["images"],
            "billed": f"{r['billed']:.9f}",
        }
        for r in rows
    ]


@pytest.fixture
def fallbacks(owner: Actor, outsider: Actor, ledger: None) -> None:
    """Images other models served, on two days, for two reasons; and the outsider's."""
    throttled = record_usage(owner.tenant, n=3, occurred_at=DAYS[1])
    _served_by_fallback(throttled, requested="flash", reason="primary_throttled")
    late = record_usage(owner.tenant, tier="flash", occurred_at=DAYS[2])
    _served_by_fallback(late, requested="pro", reason="deadline")
    theirs = record_usage(outsider.tenant, occurred_at=DAYS[2])
    _served_by_fallback(theirs, requested="pro", reason="deadline")


def test_fallbacks_equal_the_ledgers_before_during_and_after_the_fold(
    owner: Actor, fallbacks: None
) -> None:
    before = _usage(owner, "day")["fallbacks"]
    usage_rollup_fold(limit=9)  # some fallbacks folded, the rest still a tail
    assert UsageEvent.objects.filter(rolled_up=False).exists()
    during = _usage(owner, "model")["fallbacks"]
    usage_rollup_fold_all()
    after = _usage(owner, "mode")["fallbacks"]

    expected = _ledger_fallbacks(owner.tenant)
    assert [(f["served_model"], f["images"]) for f in expected] == [("lite", 3), ("flash", 1)]
    assert before == during == after == _ledger_fallbacks(owner.tenant)
    assert usage_rollup_mismatches() == []
    keys = UsageRollup.objects.filter(tenant=owner.tenant).exclude(fallback_reason="")
    assert sorted(keys.values_list("requested_tier", "fallback_reason", "images")) == [
        ("flash", "primary_throttled", 3),
        ("pro", "deadline", 1),
    ]


def test_after_the_fold_the_fallbacks_are_read_from_the_rollups(
    owner: Actor, fallbacks: None
) -> None:
    usage_rollup_fold_all()
    UsageRollup.objects.filter(tenant=owner.tenant, fallback_reason="deadline").update(
        images=F("images") + 40
    )

    [throttled, late] = _usage(owner, "day")["fallbacks"]

    # Only the rollup row says 41: the ledger (one image) was not read again.
    assert (late["reason"], late["images"]) == ("deadline", 41)
    assert throttled["images"] == 3
    assert usage_rollup_mismatches(tenant=owner.tenant) != []


def test_the_dashboard_lists_the_fallbacks_from_the_rollups(owner: Actor) -> None:
    # Today: the page shows the current period only.
    _served_by_fallback(
        record_usage(owner.tenant, n=3, occurred_at=NOON), requested="flash", reason="deadline"
    )
    _served_by_fallback(
        record_usage(owner.tenant, tier="flash", occurred_at=NOON),
        requested="pro",
        reason="deadline",
    )
    usage_rollup_fold_all()
    dashboard = Client()
    assert dashboard.login(username=owner.user.username, password=PASSWORD)

    page = dashboard.get("/usage/")

    shown = [
        (f["requested_model"], f["served_model"], f["images"]) for f in page.context["fallbacks"]
    ]
    assert shown == [("flash", "lite", 3), ("pro", "flash", 1)]


def test_sums_of_amounts_are_exact_to_the_nano_dollar_even_where_they_are_floats(
    owner: Actor,
) -> None:
    # 35 images at $0.0268805: SQLite keeps decimal columns as floats, and its SUM of them
    # is 0.9408174999999994 (PostgreSQL's is exact).
    events = record_usage(owner.tenant, n=35)
    UsageEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        provider_cost=Decimal("0.0268805"), markup=Decimal(0), billed=Decimal("0.0268805")
    )
    exact = Decimal("0.9408175")
    while usage_rollup_fold(limit=4):  # small folds: sums of sums
        pass

    totals = _usage(owner, "mode")["total"]

    assert usage_rollup_mismatches() == []
    assert Decimal(totals["billed"]) == Decimal(totals["provider_cost"]) == exact
    assert UsageRollup.objects.get(tenant=owner.tenant).billed == exact
