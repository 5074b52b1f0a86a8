"""A claim's news reaches the waiters of every job it claimed, however many (generation/live.py).

PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more, and one job's key is 41 bytes:
a worker at provider concurrency 400 claims 200 jobs at once, and its claim failed with
"payload string too long" until the news went out in several messages.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from django.db import connection
from django_q.conf import Conf

from generation import live, runner
from generation.models import Job
from generation.services import JobParams, job_submit
from tenants.services import tenant_create
from tests.plugins.actors import make_plan

pytestmark = pytest.mark.django_db(transaction=True)

CLAIMED = 250  # 250 × 41 bytes of keys: two PostgreSQL messages


def _claim_in_a_worker(limit: int) -> list[uuid.UUID]:
    try:
        return runner._claim(limit=limit, backlog=0)
    finally:
        connection.close()


async def _watch_while_claiming(first: str, last: str) -> tuple[list[uuid.UUID], bool, bool]:
    # The listener wakes every watch once it listens (what changed before it did): a
    # watch of a key nobody writes sees that moment, and the jobs' watches start after it.
    async with live.watch(f"job:{uuid.uuid4()}") as started:
        await started.changed(3.0)  # False on SQLite: its poll needs no start
        seen = live.job_version(Job.Status.QUEUED, 0)
        async with (
            live.watch(f"job:{first}", seen) as w_first,
            live.watch(f"job:{last}", seen) as w_last,
        ):
            claimed = await asyncio.to_thread(_claim_in_a_worker, CLAIMED)
            return claimed, await w_first.changed(10.0), await w_last.changed(10.0)


def test_a_claim_of_250_jobs_wakes_the_waiters_of_the_first_and_the_last(
    news: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)  # submitted jobs stay queued for the claim
    plan = make_plan(slug="many", max_concurrent_jobs=1000, monthly_image_quota=100_000)
    tenant = tenant_create(name="Many", slug="many", plan=plan)
    jobs = [job_submit(tenant=tenant, params=JobParams(prompt=f"p {i}")) for i in range(CLAIMED)]
    first, last = str(jobs[0].pk), str(jobs[-1].pk)

    claimed, first_woken, last_woken = asyncio.run(_watch_while_claiming(first, last))

    assert len(claimed) == CLAIMED
    assert Job.objects.filter(status=Job.Status.RUNNING).count() == CLAIMED
    assert first_woken and last_woken


def test_news_is_cut_into_messages_under_postgresqls_limit_without_splitting_a_key() -> None:
    keys: list[Any] = [f"job:{uuid.uuid4()}" for _ in range(500)]
    payloads = live._payloads(keys)
    assert len(payloads) == 3
    assert all(len(p.encode()) < 8000 for p in payloads)
    assert [k for p in payloads for k in p.split(" ")] == keys
