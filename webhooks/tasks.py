"""django-q2 tasks of webhooks: thin and idempotent; the delivery rows are the truth."""

from __future__ import annotations

from django.utils import timezone
from django_q.tasks import async_task

from webhooks import doorbell, services


def deliver(delivery_id: str) -> None:
    services.delivery_attempt(delivery_id=delivery_id)


def sweep() -> int:
    """Scheduled every minute: ring for every delivery that is due (any whose doorbell was
    lost with its process or the broker), and arm the doorbells of retries due before the
    next sweep, so that they are sent at their time (webhooks/doorbell.py)."""
    now = timezone.now()
    due = services.deliveries_due(now)
    for delivery_id in due:
        async_task("webhooks.tasks.deliver", delivery_id)
    for delivery_id, at in services.deliveries_due_soon(now, within=doorbell.HORIZON):
        doorbell.ring_at(delivery_id, at)
    return len(due)
