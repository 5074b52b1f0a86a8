"""Series lifecycle events sent to the tenant's webhook endpoints."""

from __future__ import annotations

from series.models import Series
from series.selectors import series_get_for_tenant
from series.serializers import SeriesOut
from webhooks.services import event_emit


def series_event_emit(*, series: Series) -> None:
    """`series.failed` for a failed series, `series.completed` for one that succeeded or was
    canceled (its `status` says which); the payload is the series as the API shows it. Call
    inside the transaction that finishes the series."""
    event_type = "series.failed" if series.status == Series.Status.FAILED else "series.completed"
    data = dict(SeriesOut(series_get_for_tenant(series.tenant, series.pk)).data)
    event_emit(tenant=series.tenant, event_type=event_type, data={"series": data})
