"""Writes in the billing domain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing.models import UsageEvent
from billing.pricing import Cost
from generation.models import Image, Job
from generation.providers.types import TokenUsage
from tenants.models import Tenant


def usage_record(
    *,
    job: Job,
    image: Image,
    usage: TokenUsage,
    model: str,
    cost: Cost,
    occurred_at: dt.datetime | None = None,
) -> UsageEvent:
    """The ledger row for one stored image. Call inside the transaction that stores it.

    `image` is one-to-one with its usage event, and images are unique per (job, index), so a
    re-delivered task can neither store nor bill an image twice.
    """
    return UsageEvent.objects.create(
        tenant_id=job.tenant_id,
        job=job,
        image=image,
        tier=job.tier,
        model=model,
        mode=job.mode,
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
