"""Usage totals that stay fast as the ledger grows: daily rollups plus the ledger's tail.

`UsageRollup` holds, per tenant × UTC day × tier × model × mode × the rates and markup
the images were priced at (× the tier asked for and the reason, for images a fallback
served), the sum of the usage events marked `rolled_up`. The rates make an invoice's
token lines (one per line, kind of token and rate) rollups too. A scheduled fold
(`usage_rollup_fold`, every minute) moves events into it: it locks a batch of unfolded
events, adds them to their rollup rows and marks them, in one transaction, so an event is
in a rollup exactly when it is marked.

The store path doesn't touch the rollups. One rollup row per tenant and day would be
updated by every image the tenant stores and stay locked until that store's COMMIT, which
is the stall `billing.services.usage_quota_settle` exists to avoid.

A read (`usage_totals`) is therefore exact at every moment: the rollups of the whole UTC
days in the range, plus the ledger rows not yet folded (a partial index holds only
those), plus the ledger rows of any partial day at either end, read in one statement
(UNION ALL) so that a fold committing meanwhile is seen entirely or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Count, DecimalField, F, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, TruncDate

from billing.models import UsageEvent, UsageRollup
from tenants.models import Tenant

TOKEN_FIELDS = (
    "input_text_tokens",
    "input_image_tokens",
    "output_text_tokens",
    "output_image_tokens",
    "thoughts_tokens",
)
RATE_KEYS = ("input_per_million", "text_output_per_million", "image_output_per_million")
KEYS = ("day", "tier", "model", "mode", "requested_tier", "fallback_reason", *RATE_KEYS, "markup")
# Rollup keys that are the usage event's own columns (the others are computed).
EVENT_COLUMNS = ("tier", "model", "mode", *RATE_KEYS, "markup")
UNRATED = UsageRollup.UNRATED
MONEY_SUM = DecimalField(max_digits=24, decimal_places=9)
FOLD_BATCH = 5000


def _day(expression: str = "occurred_at") -> TruncDate:
    return TruncDate(expression, tzinfo=dt.UTC)


def _event_key(key: str) -> Combinable:
    """A rollup key column as computed from a usage event (and, for a fallback, its image:
    the tier asked for and why another served it; both empty for images served as asked).
    """
    if key == "day":
        return _day()
    if key == "fallback_reason":
        return Coalesce(F("image__fallback_reason"), Value(""))
    if key == "requested_tier":
        return Case(
            When(image__fallback_reason__gt="", then=F("image__requested_tier")),
            default=Value(""),
        )
    return F(key)


def _event_keys() -> dict[str, Combinable]:
    """The key columns that are not fields of the usage event, as annotations."""
    return {k: _event_key(k) for k in KEYS if k not in EVENT_COLUMNS}


def _stored(key: str, value: Any) -> Any:
    """A key's value as the rollup stores it: an event without rates is `UNRATED`."""
    return UNRATED if value is None and key in RATE_KEYS else value


NANO = Decimal("1e-9")


def _money(value: Any) -> Decimal:
    """A sum of ledger amounts, in nano-dollars as the ledger keeps them. PostgreSQL's sums
    are exact already; SQLite keeps a decimal column as a float and sums floats, so a sum
    of 35 amounts read 0.940817499999999 for 0.9408175, and Django rounds an aggregate
    to 15 significant digits only (a column to its decimal places)."""
    return Decimal(value or 0).quantize(NANO)


def _event_sums() -> dict[str, Any]:
    return {
        "images": Count("pk"),
        **{field: Sum(field) for field in TOKEN_FIELDS},
        "provider_cost": Sum("provider_cost", output_field=MONEY_SUM),
        "billed": Sum("billed", output_field=MONEY_SUM),
    }


def _rollup_sums() -> dict[str, Any]:
    return {
        "images": Sum("images"),
        **{field: Sum(field) for field in TOKEN_FIELDS},
        "provider_cost": Sum("provider_cost", output_field=MONEY_SUM),
        "billed": Sum("billed", output_field=MONEY_SUM),
    }


# -- the fold ---------------------------------------------------------------------------


def _upsert_sql() -> str:
    table = connection.ops.quote_name(UsageRollup._meta.db_table)
    counters = ("images", *TOKEN_FIELDS, "provider_cost", "billed")
    columns = ("tenant_id", *KEYS, *counters)
    added = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (tenant_id, {', '.join(KEYS)}) DO UPDATE SET {added}"
    )


@transaction.atomic
def usage_rollup_fold(*, limit: int = FOLD_BATCH) -> int:
    """Add up to `limit` unfolded usage events to their rollups and mark them; the count.

    Rows another fold holds are skipped (`SKIP LOCKED` on PostgreSQL), so folds may run
    concurrently, and a replayed or overlapping scheduled run adds nothing twice.
    """
    pending = UsageEvent.objects.filter(rolled_up=False).order_by()
    if connection.features.has_select_for_update_skip_locked:
        pending = pending.select_for_update(skip_locked=True)
    ids = list(pending.values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    groups = (
        UsageEvent.objects.filter(pk__in=ids)
        .order_by()
        .annotate(**_event_keys())
        .values("tenant_id", *KEYS)
        .annotate(**_event_sums())
    )
    rows = [
        [
            g["tenant_id"],
            *(_stored(k, g[k]) for k in KEYS),
            g["images"],
            *(g[field] or 0 for field in TOKEN_FIELDS),
            _money(g["provider_cost"]),
            _money(g["billed"]),
        ]
        for g in groups
    ]
    # One key order for every fold, so that two concurrent folds cannot deadlock.
    rows.sort(key=lambda r: tuple(r[: 1 + len(KEYS)]))
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_sql(), rows)
    UsageEvent.objects.filter(pk__in=ids).update(rolled_up=True)
    return len(ids)


def usage_rollup_fold_all(*, limit: int = FOLD_BATCH, max_batches: int = 200) -> int:
    """Fold until nothing is left, or `max_batches` folds (the scheduled task, which a
    ledger arriving faster than it folds must not keep running forever); the number of
    events folded."""
    total = 0
    for _ in range(max_batches):
        folded = usage_rollup_fold(limit=limit)
        total += folded
        if folded < limit:
            break
    return total


# -- reads ------------------------------------------------------------------------------


def _midnight_after(moment: dt.datetime) -> dt.datetime:
    day = moment.astimezone(dt.UTC).date()
    midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
    return midnight if midnight >= moment else midnight + dt.timedelta(days=1)


def _midnight_before(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(moment.astimezone(dt.UTC).date(), dt.time(), dt.UTC)


def _ledger_part(
    tenant: Tenant, start: dt.datetime, end: dt.datetime, days: tuple[dt.datetime, dt.datetime]
) -> QuerySet[UsageEvent]:
    """The ledger rows a read must add to the rollups of `days` (whole UTC days)."""
    events = UsageEvent.objects.filter(tenant=tenant, occurred_at__gte=start, occurred_at__lt=end)
    first, last = days
    if first >= last:
        return events
    missing = Q(rolled_up=False)
    if start < first:
        missing |= Q(occurred_at__lt=first)
    if last < end:
        missing |= Q(occurred_at__gte=last)
    return events.filter(missing)


def usage_totals(
    tenant: Tenant, *, start: dt.datetime, end: dt.datetime, keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Images, tokens and money of the tenant's usage in [start, end), one row per value
    of `keys` (any of `KEYS`), exactly as summing the ledger would give. A rate key is
    `UNRATED` for usage stored before token billing (no rates recorded).
    """
    unknown = set(keys) - set(KEYS)
    if unknown:
        raise ValueError(f"Unknown usage keys: {sorted(unknown)}")
    keys = list(keys)
    days = (_midnight_after(start), _midnight_before(end))
    # Both halves select key columns as annotations, in the same order, for the UNION.
    names = {key: f"k_{key}" for key in keys}
    ledger = (
        _ledger_part(tenant, start, end, days)
        .order_by()
        .annotate(**{names[k]: _event_key(k) for k in keys})
        .values(*names.values())
        .annotate(**_event_sums())
    )
    if days[0] < days[1]:
        rollups = (
            UsageRollup.objects.filter(
                tenant=tenant, day__gte=days[0].date(), day__lt=days[1].date()
            )
            .order_by()
            .annotate(**{names[k]: F(k) for k in keys})
            .values(*names.values())
            .annotate(**_rollup_sums())
        )
        parts: Iterable[dict[str, Any]] = rollups.union(ledger, all=True)
    else:
        parts = ledger
    return _merge(parts, names)


def _merge(parts: Iterable[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in parts:
        key = tuple(_key_value(k, part[name]) for k, name in names.items())
        row = merged.setdefault(
            key,
            {
                **dict(zip(names, key, strict=True)),
                "images": 0,
                **dict.fromkeys(TOKEN_FIELDS, 0),
                "provider_cost": Decimal(0),
                "billed": Decimal(0),
            },
        )
        row["images"] += int(part["images"] or 0)
        for field in TOKEN_FIELDS:
            row[field] += int(part[field] or 0)
        row["provider_cost"] += _money(part["provider_cost"])
        row["billed"] += _money(part["billed"])
    return [merged[key] for key in sorted(merged)]


def _key_value(key: str, value: Any) -> Any:
    if key in RATE_KEYS or key == "markup":  # (SQLite may answer a UNION's decimals as floats)
        return Decimal(str(_stored(key, value)))
    if key == "day" and isinstance(value, str):  # SQLite returns a UNION's dates as text
        return dt.date.fromisoformat(value)
    if key == "day" and isinstance(value, dt.datetime):
        return value.date()
    return value


# -- the check --------------------------------------------------------------------------


def usage_rollup_mismatches(*, tenant: Tenant | None = None) -> list[dict[str, Any]]:
    """Every rollup key whose totals differ from the folded ledger rows' (empty = exact)."""
    events = UsageEvent.objects.filter(rolled_up=True)
    rollups = UsageRollup.objects.all()
    if tenant is not None:
        events, rollups = events.filter(tenant=tenant), rollups.filter(tenant=tenant)
    counters = ("images", *TOKEN_FIELDS, "provider_cost", "billed")
    money = ("provider_cost", "billed")
    ledger = {
        (g["tenant_id"], *(_stored(k, g[k]) for k in KEYS)): {
            c: _money(g[c]) if c in money else g[c] or 0 for c in counters
        }
        for g in events.order_by()
        .annotate(**_event_keys())
        .values("tenant_id", *KEYS)
        .annotate(**_event_sums())
    }
    kept = {
        (r["tenant_id"], *(r[k] for k in KEYS)): {c: r[c] for c in counters}
        for r in rollups.values("tenant_id", *KEYS, *counters)
    }
    return [
        {"key": key, "ledger": ledger.get(key), "rollup": kept.get(key)}
        for key in sorted(set(ledger) | set(kept), key=str)
        if ledger.get(key) != kept.get(key)
    ]
