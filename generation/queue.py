"""Enqueueing: the queue is only a doorbell; job rows are the truth."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction
from django_q.tasks import async_task


def enqueue_job(job_id: uuid.UUID | str) -> None:
    async_task("generation.tasks.run_job", str(job_id), task_name=f"job-{job_id}")


def enqueue_job_on_commit(job_id: uuid.UUID | str) -> None:
    transaction.on_commit(lambda: enqueue_job(job_id))


def enqueue_jobs(job_ids: Iterable[uuid.UUID | str]) -> None:
    for job_id in job_ids:
        enqueue_job(job_id)


def enqueue_webhook_delivery(delivery_id: uuid.UUID | str) -> None:
    async_task("generation.tasks.deliver_webhook", str(delivery_id))
