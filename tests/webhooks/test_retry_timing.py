"""Retries are sent at their scheduled time (± a few seconds), not at the minute sweep:
through a real worker (`manage.py qcluster`) and a receiver on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from django_q.tasks import async_task

from generation.models import WorkerHeartbeat
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.receiver import WebhookReceiver
from webhooks.models import WebhookDelivery
from webhooks.services import RETRY_SCHEDULE, event_emit

pytestmark = pytest.mark.cluster
JOB = {"job": {"id": "0b7f7c4e-1", "status": "succeeded"}}
# The worker's scheduler first looks at its schedules (the minute sweeps) 30 s after it
# starts; every retry below is due, and checked, well before that.
LATE_AT_MOST_S = 3.0


@pytest.fixture
def worker(cluster_factory: Callable[..., Cluster], settings: Any) -> Cluster:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    cluster = cluster_factory(BUNCH_Q_WORKERS="1", BUNCH_WEBHOOKS_ALLOW_LOOPBACK="true")
    # Up and taking tasks before any retry is due: a late start would send it as due.
    wait_until(WorkerHeartbeat.objects.exists, 60, "the worker to start")
    return cluster


def _endpoint(actor: Actor, url: str) -> None:
    answer = actor.api().post("/api/v1/webhook-endpoints", {"url": url}, format="json")
    assert answer.status_code == 201, answer.content


def test_the_retry_after_a_failed_attempt_is_sent_5_s_later(
    worker: Cluster, owner: Actor, webhook_receiver: WebhookReceiver
) -> None:
    assert RETRY_SCHEDULE[0] == dt.timedelta(seconds=5)
    _endpoint(owner, webhook_receiver.url)
    webhook_receiver.answer(500)
    event_emit(tenant=owner.tenant, event_type="job.succeeded", data=JOB)

    first, retry = webhook_receiver.wait_for_requests(2, timeout_s=20)

    gap = (retry.arrived_at - first.arrived_at).total_seconds()
    assert 5.0 - 0.5 <= gap <= 5.0 + LATE_AT_MOST_S  # due 5 s after the attempt began
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    wait_until(
        lambda: WebhookDelivery.objects.filter(status="succeeded", attempts=2).exists(),
        10,
        "the retry to be recorded",
    )


def test_the_sweep_arms_a_retry_due_before_the_next_sweep(
    worker: Cluster,
    owner: Actor,
    webhook_receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A retry recorded by a process that is gone (no doorbell of its own): the sweep that
    runs before it is due rings for it at its time."""
    _endpoint(owner, webhook_receiver.url)
    due = timezone.now() + dt.timedelta(seconds=6)
    with django_capture_on_commit_callbacks(execute=False):  # its first doorbell is lost
        (delivery,) = event_emit(tenant=owner.tenant, event_type="job.succeeded", data=JOB)
    # As a worker that died after a failed attempt left it: one retry, due in 6 s.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=1, next_attempt_at=due)

    async_task("webhooks.tasks.sweep")

    (retry,) = webhook_receiver.wait_for_requests(1, timeout_s=20)
    late = (retry.arrived_at - due).total_seconds()
    assert 0 <= late <= LATE_AT_MOST_S
