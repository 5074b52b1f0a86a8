"""Batch lifecycle events sent to the tenant's webhook endpoints."""

from __future__ import annotations

from batches.models import Batch
from batches.selectors import batch_get_for_tenant
from batches.serializers import BatchOut
from webhooks.services import event_emit


def batch_event_emit(*, batch: Batch) -> None:
    """`batch.completed`, or `batch.failed` when no item succeeded; the payload is the batch as
    the API shows it. Call inside the transaction that finishes the batch."""
    event_type = "batch.failed" if batch.status == Batch.Status.FAILED else "batch.completed"
    data = dict(BatchOut(batch_get_for_tenant(batch.tenant, batch.pk)).data)
    event_emit(tenant=batch.tenant, event_type=event_type, data={"batch": data})
