"""The invoice's token lines from the rollups (keyed by the rates and markup too): the same
lines, to the token and the nano-dollar, as summing the ledger per line and rates, at
several rates in one month (a price-book change mid-day, a markup change), before, during
and after the fold; and the invoice and the usage page read no month of usage rows."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Price, UsageEvent, UsageRollup
from billing.rollups import (
    UNRATED,
    usage_rollup_fold,
    usage_rollup_fold_all,
    usage_rollup_mismatches,
)
from billing.selectors import token_lines_in, usage_in
from billing.tokens import TokenLine, token_lines
from core.catalog import MODELS, TokenUsage
from tests.billing.conftest import record_usage
from tests.plugins.actors import PASSWORD, Actor

pytestmark = pytest.mark.django_db
NOON = timezone.now().astimezone(dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0)
DAYS = [NOON - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
LITE = MODELS["lite"].model_id
PRO_1K = TokenUsage(input_text_tokens=9, input_image_tokens=560, output_image_tokens=1120)


def _set_image_rate(rate: str) -> None:
    Price.objects.filter(model=LITE, mode="standard").update(image_output_per_million=rate)


def _set_markup(actor: Actor, markup: str) -> None:
    plan = actor.tenant.plan
    plan.markup_per_image = Decimal(markup)
    plan.save()


def _unrated(events: list[UsageEvent]) -> None:
    """As stored before token billing: no rates recorded."""
    UsageEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        input_per_million=None, text_output_per_million=None, image_output_per_million=None
    )


@pytest.fixture
def repriced(owner: Actor, outsider: Actor) -> None:
    """Four days of usage at several rates: the lite image rate changes at noon on the
    second day (the same day's key priced at two rates), the plan's markup on the third;
    pro and batch lines; two images from before token billing; the outsider's usage."""
    _set_markup(owner, "0.01")
    record_usage(owner.tenant, n=2, occurred_at=DAYS[0])
    record_usage(owner.tenant, mode="batch", n=3, occurred_at=DAYS[0] + dt.timedelta(hours=1))
    record_usage(owner.tenant, n=2, occurred_at=DAYS[1] - dt.timedelta(hours=2))
    _set_image_rate("24")
    record_usage(owner.tenant, n=3, occurred_at=DAYS[1] + dt.timedelta(hours=2))
    _set_markup(owner, "0.02")
    record_usage(owner.tenant, n=4, occurred_at=DAYS[2])
    record_usage(owner.tenant, tier="pro", usage=PRO_1K, n=2, occurred_at=DAYS[3])
    _unrated(record_usage(owner.tenant, n=2, occurred_at=DAYS[2]))
    record_usage(outsider.tenant, n=5, occurred_at=DAYS[1])


def _ranges() -> list[tuple[dt.datetime, dt.datetime]]:
    """Whole UTC days (rollups only, once folded) and partial days at both ends."""
    midnight = DAYS[0].replace(hour=0)
    return [
        (midnight, midnight + dt.timedelta(days=4)),
        (DAYS[0] + dt.timedelta(minutes=30), DAYS[3] + dt.timedelta(minutes=1)),
        (DAYS[1] - dt.timedelta(hours=1), DAYS[1] + dt.timedelta(hours=3)),
    ]


def _both(actor: Actor) -> list[tuple[list[TokenLine], list[TokenLine]]]:
    """(from the rollups, from the ledger) for each range."""
    return [
        (
            token_lines_in(actor.tenant, start=start, end=end),
            token_lines(usage_in(actor.tenant, start=start, end=end)),
        )
        for start, end in _ranges()
    ]


def test_token_lines_equal_the_ledgers_at_several_rates_before_during_and_after_the_fold(
    owner: Actor, repriced: None
) -> None:
    before = _both(owner)
    usage_rollup_fold(limit=6)  # part folded (a day's key split across the fold), the rest a tail
    assert UsageEvent.objects.filter(rolled_up=False).exists()
    during = _both(owner)
    usage_rollup_fold_all()
    after = _both(owner)

    for rollups, ledger in before + during + after:
        assert rollups == ledger
    assert usage_rollup_mismatches() == []
    whole_days = after[0][0]
    lite = {
        line.key.rate: line.quantity
        for line in whole_days
        if (line.key.tier, line.key.mode, line.key.kind) == ("lite", "standard", "image_output")
    }
    assert lite == {Decimal(30): 1120 * 4, Decimal(24): 1120 * 7}
    markups = {line.key.rate: line.images for line in whole_days if line.key.is_markup}
    assert markups == {Decimal("0.01"): 10, Decimal("0.02"): 6}  # not the 2 unrated images
    rows = UsageRollup.objects.filter(tenant=owner.tenant, day=DAYS[1].date(), mode="standard")
    assert sorted(rows.values_list("image_output_per_million", "images")) == [
        (Decimal(24), 3),
        (Decimal(30), 2),
    ]
    unrated = UsageRollup.objects.filter(tenant=owner.tenant, input_per_million=UNRATED)
    assert list(unrated.values_list("day", "images")) == [(DAYS[2].date(), 2)]


def _invoice(actor: Actor) -> dict[str, Any]:
    response = actor.api().get("/api/v1/billing/invoice")
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def this_period(owner: Actor) -> None:
    """Today's usage at two image rates and two markups."""
    _set_markup(owner, "0.01")
    record_usage(owner.tenant, n=3)
    _set_image_rate("24")
    record_usage(owner.tenant, n=2)
    _set_markup(owner, "0.02")
    record_usage(owner.tenant, mode="batch", n=2)


def test_the_invoice_is_the_same_before_and_after_the_fold_and_reads_the_rollups(
    owner: Actor, this_period: None
) -> None:
    before = _invoice(owner)
    usage_rollup_fold_all()
    after = _invoice(owner)
    # A rollup row changed behind the ledger's back: the invoice follows the rollup.
    UsageRollup.objects.filter(
        tenant=owner.tenant, mode="standard", image_output_per_million=24
    ).update(output_image_tokens=F("output_image_tokens") + 1000)
    tampered = _invoice(owner)

    assert before == after
    image_lines = {
        line["description"]: line["quantity"]
        for line in tampered["lines"]
        if line["kind"] == "image_output" and line["mode"] == "standard"
    }
    assert image_lines == {
        "Nano Banana 2 Lite: image output, 3,360 tokens × $0.00003 = $0.10": 3360,
        "Nano Banana 2 Lite: image output, 3,240 tokens × $0.000024 = $0.08": 2240 + 1000,
    }


def _usage_event_statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "billing_usageevent" in q["sql"]]


def _many_events(actor: Actor, n: int) -> None:
    """Ledger rows without images, enough that the planner's choice is the one at scale."""
    [model] = record_usage(actor.tenant, occurred_at=timezone.now())
    fields = {
        f.attname: getattr(model, f.attname)
        for f in UsageEvent._meta.concrete_fields
        if f.attname not in ("id", "image_id")
    }
    UsageEvent.objects.bulk_create(UsageEvent(**fields) for _ in range(n))


def test_the_invoice_and_the_usage_page_read_only_the_ledgers_unfolded_tail(
    owner: Actor, outsider: Actor, this_period: None
) -> None:
    _many_events(owner, 3000)
    _many_events(outsider, 3000)
    usage_rollup_fold_all()
    dashboard = Client()
    assert dashboard.login(username=owner.user.username, password=PASSWORD)
    _invoice(owner)  # the first request also looks the API key up

    with CaptureQueriesContext(connection) as invoice:
        _invoice(owner)
    with CaptureQueriesContext(connection) as page:
        assert dashboard.get("/usage/").status_code == 200

    for queries in (invoice, page):
        statements = _usage_event_statements(queries)
        sums = [sql for sql in statements if re.search(r"\bSUM\(", sql)]
        others = [sql for sql in statements if sql not in sums]
        # Every sum over usage events is a rollup read's tail: rollups UNION the ledger
        # rows not yet folded (the period is whole UTC days).
        assert sums and all("billing_usagerollup" in sql for sql in sums), sums
        assert all(re.search(r'NOT "billing_usageevent"\."rolled_up"', sql) for sql in sums)
        # Besides: the count of rows not yet sent to Stripe (the Stripe state index).
        assert all("stripe_state" in sql and "COUNT(" in sql for sql in others), others
        _assert_tail_by_partial_index(sums)


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


def _assert_tail_by_partial_index(statements: list[str]) -> None:
    """The ledger half of each statement reads the partial index of unfolded rows."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE billing_usageevent, billing_usagerollup")
        for sql in statements:
            if connection.vendor == "postgresql":
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                ledger = [
                    scan
                    for scan in _scans(plan[0]["Plan"])
                    if scan["Relation Name"] == "billing_usageevent"
                ]
                assert ledger, plan
                assert all(scan.get("Index Name") == "usage_not_rolled_up" for scan in ledger)
            else:
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
                plan = " ".join(str(row[-1]) for row in cursor.fetchall())
                assert "USING INDEX usage_not_rolled_up" in plan, plan


@pytest.mark.postgres_only  # the planner's choice at scale (SQLite reads the tenant's period)
def test_the_count_of_rows_not_yet_sent_reads_only_the_tenants_unsent_rows(
    owner: Actor, outsider: Actor, this_period: None
) -> None:
    # Most rows sent; another tenant's backlog of unsent rows is bigger than this one's.
    _many_events(owner, 3000)
    _many_events(outsider, 3000)
    UsageEvent.objects.update(stripe_state="sent")
    UsageEvent.objects.filter(pk__in=UsageEvent.objects.filter(tenant=owner.tenant)[:4]).update(
        stripe_state="failed"
    )
    UsageEvent.objects.filter(
        pk__in=UsageEvent.objects.filter(tenant=outsider.tenant)[:300]
    ).update(stripe_state="pending")
    usage_rollup_fold_all()
    _invoice(owner)  # the first request also looks the API key up

    with CaptureQueriesContext(connection) as queries:
        invoice = _invoice(owner)

    statements = _usage_event_statements(queries)
    [count] = [sql for sql in statements if "COUNT(" in sql and "stripe_state" in sql]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_usageevent")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {count}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    assert _index_names(plan[0]["Plan"]) == {"usage_state_tenant_time"}, plan
    assert invoice["not_yet_reported"] == 4


def _index_names(node: dict[str, Any]) -> set[str]:
    """The indexes a plan reads (a bitmap heap scan's are its children's)."""
    names = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        names |= _index_names(child)
    return names
