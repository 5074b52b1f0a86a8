"""Writes in the billing domain."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing.models import UsageEvent
from billing.pricing import Cost
from core.catalog import TokenUsage
from core.money import to_nanos
from tenants.models import QuotaPeriod, Tenant
from tenants.services import quota_commit


def usage_record(
    *,
    tenant_id: int,
    job_id: uuid.UUID,
    image_id: uuid.UUID,
    tier: str,
    mode: str,
    usage: TokenUsage,
    model: str,
    cost: Cost,
    occurred_at: dt.datetime | None = None,
    quota_settled: bool = True,
) -> UsageEvent:
    """The ledger row for one stored image. Call inside the transaction that stores it.

    `image` is one-to-one with its usage event, and images are unique per (job, index), so a
    re-delivered task can neither store nor bill an image twice. `quota_settled=False`
    when the caller moves the image from the period's reservation to its usage after the
    transaction (`usage_quota_settle`).
    """
    rates = cost.rates
    return UsageEvent.objects.create(
        input_per_million=rates.input_per_million if rates else None,
        text_output_per_million=rates.text_output_per_million if rates else None,
        image_output_per_million=rates.image_output_per_million if rates else None,
        quota_settled=quota_settled,
        tenant_id=tenant_id,
        job_id=job_id,
        image_id=image_id,
        tier=tier,
        model=model,
        mode=mode,
        input_text_tokens=usage.input_text_tokens,
        input_image_tokens=usage.input_image_tokens,
        output_text_tokens=usage.output_text_tokens,
        output_image_tokens=usage.output_image_tokens,
        thoughts_tokens=usage.thoughts_tokens,
        provider_cost=cost.provider_cost,
        markup=cost.markup,
        billed=cost.billed,
        occurred_at=occurred_at or timezone.now(),
    )


def usage_quota_settle(
    *, usage_id: int, period_id: int, reserved_nanos: int, spent: Decimal
) -> bool:
    """Move one stored image from its period's reservation to its usage, once.

    The period row is shared by every submit and store of the tenant. Updated inside the
    store's transaction it stayed locked until that transaction's COMMIT, which a busy
    worker (the GIL held by JSON and base64 work on a 1.4 MB image) sent milliseconds
    later, while the tenant's submits waited. On PostgreSQL this is one statement in
    autocommit, so the row is locked only while the database executes it; elsewhere a
    short transaction of its own. Either way the flag and the counters change together.
    Until it runs, reserved + used is the same (the image still counts as reserved), so no
    reservation can pass the plan meanwhile.
    True if this call settled it.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            claimed = UsageEvent.objects.filter(pk=usage_id, quota_settled=False).update(
                quota_settled=True
            )
            if claimed:
                quota_commit(
                    period_id=period_id, images=1, reserved_nanos=reserved_nanos, spent=spent
                )
        return bool(claimed)
    quote = connection.ops.quote_name
    sql = (
        f"WITH settled AS (UPDATE {quote(UsageEvent._meta.db_table)} "
        'SET "quota_settled" = TRUE WHERE "id" = %s AND NOT "quota_settled" RETURNING "id") '
        f"UPDATE {quote(QuotaPeriod._meta.db_table)} SET "
        '"images_reserved" = "images_reserved" - 1, "images_used" = "images_used" + 1, '
        '"spend_reserved_nanos" = "spend_reserved_nanos" - %s, '
        '"spend_used_nanos" = "spend_used_nanos" + %s '
        f'FROM settled WHERE {quote(QuotaPeriod._meta.db_table)}."id" = %s '
        'RETURNING settled."id"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [usage_id, reserved_nanos, to_nanos(spent), period_id])
        return bool(cursor.rowcount)


# Stripe state of the ledger and of tenants ------------------------------------------------
#
# Tenant's Stripe ids live on `tenants.Tenant`; billing is their only writer, so the writes
# have their names here.


def tenant_stripe_ids_set(
    *, tenant: Tenant, customer_id: str | None = None, subscription_id: str | None = None
) -> Tenant:
    """Record the tenant's Stripe customer (only if it has none) and/or subscription."""
    if customer_id:
        Tenant.objects.filter(pk=tenant.pk, stripe_customer_id="").update(
            stripe_customer_id=customer_id
        )
    if subscription_id:
        Tenant.objects.filter(pk=tenant.pk).update(stripe_subscription_id=subscription_id)
    tenant.refresh_from_db(fields=["stripe_customer_id", "stripe_subscription_id"])
    return tenant


@transaction.atomic
def usage_resend(*, events: QuerySet[UsageEvent]) -> int:
    """Put failed rows back in the sync queue (an operator fixed the cause)."""
    return events.filter(stripe_state=UsageEvent.StripeState.FAILED).update(
        stripe_state=UsageEvent.StripeState.PENDING,
        stripe_next_attempt_at=None,
        stripe_last_error="",
    )


@transaction.atomic
def usage_mark_failed(*, tenant: Tenant, usage_ids: Iterable[int], error: str) -> int:
    """Stripe rejected these rows' meter events after accepting them (an error report)."""
    return UsageEvent.objects.filter(tenant=tenant, pk__in=list(usage_ids)).update(
        stripe_state=UsageEvent.StripeState.FAILED,
        stripe_next_attempt_at=None,
        stripe_last_error=error[:2000],
    )
