"""Tenant-scoped reads of series."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet, Sum

from billing.models import UsageEvent
from config.errors import NotFound
from generation.models import Image
from series.models import Frame, FrameVersion, Series
from tenants.models import Tenant


def series_for_tenant(tenant: Tenant) -> QuerySet[Series]:
    versions = FrameVersion.objects.select_related("job").prefetch_related(
        Prefetch("job__images", queryset=Image.objects.order_by("index"))
    )
    frames = Frame.objects.order_by("index").prefetch_related(
        Prefetch("versions", queryset=versions.order_by("number"))
    )
    return (
        Series.objects.filter(tenant=tenant)
        .select_related("tenant__plan")
        .prefetch_related(Prefetch("frames", queryset=frames))
    )


def series_get_for_tenant(tenant: Tenant, series_id: Any) -> Series:
    try:
        pk = uuid.UUID(str(series_id))
    except ValueError:
        raise NotFound("No such series.") from None
    series = series_for_tenant(tenant).filter(pk=pk).first()
    if series is None:
        raise NotFound("No such series.")
    return series


def series_list(tenant: Tenant, *, status: str | None = None) -> QuerySet[Series]:
    rows = series_for_tenant(tenant)
    return rows.filter(status=status) if status else rows


def series_billed(series: Series) -> Decimal:
    """What its frames' images have billed so far (every version's)."""
    total = UsageEvent.objects.filter(job__frame_version__frame__series=series).aggregate(
        total=Sum("billed")
    )["total"]
    return total or Decimal(0)


def frame_versions(series: Series) -> list[tuple[Frame, list[FrameVersion]]]:
    """Each frame (prefetched by `series_for_tenant`) with its versions, oldest first."""
    return [(frame, list(frame.versions.all())) for frame in series.frames.all()]
