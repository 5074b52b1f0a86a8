"""Writes in the billing domain."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from billing.models import UsageEvent
from billing.pricing import Cost
from generation.models import Image, Job
from generation.providers.types import TokenUsage


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
