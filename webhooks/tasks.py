"""django-q2 tasks of webhooks: thin and idempotent; the delivery rows are the truth."""

from __future__ import annotations

from django_q.tasks import async_task

from webhooks import services


def deliver(delivery_id: str) -> None:
    services.delivery_attempt(delivery_id=delivery_id)


def sweep() -> int:
    """Scheduled every minute: ring for every delivery that is due (retries, and any whose
    doorbell the broker lost)."""
    due = services.deliveries_due()
    for delivery_id in due:
        async_task("webhooks.tasks.deliver", delivery_id)
    return len(due)
