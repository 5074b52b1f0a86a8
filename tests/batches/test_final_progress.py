"""A batch keeps its progress as it finishes (items per status, images made, cost), and a
list of finished batches reads it from there instead of from their jobs: the same figures,
in queries that do not grow with the batches' items. Migration batches.0006 writes it on
batches that finished before."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batches.models import Batch, BatchItem
from batches.progress import progress_of
from billing.models import UsageEvent
from generation.models import Image, Job
from tests.batches.conftest import BATCHES, finish, get_batch, submit
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator
from tests.plugins.migrations import migrate_to, migrate_to_latest


def _listed(actor: Actor, batch_id: str) -> dict[str, Any]:
    response = actor.api().get(BATCHES, {"limit": 50})
    assert response.status_code == 200
    return next(row for row in response.json()["results"] if row["id"] == batch_id)


def _figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["progress"], row["actual_cost"], row["price"]


def test_a_finished_batch_keeps_its_figures_and_the_list_reads_them_without_its_jobs(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    items = [
        {"prompt": "a cat", "count": 2},
        {"prompt": "a cat [[fail:400]]"},
        {"prompt": "an owl"},
    ]
    created = submit(owner, items=items)
    running = Batch.objects.get(pk=created["id"])
    assert running.final_progress is None

    batch = finish(created["id"])

    kept = batch.final_progress
    assert kept == {
        "counts": {"succeeded": 2, "failed": 1},
        "images_made": 3,
        "actual_cost": str(sum(e.billed for e in UsageEvent.objects.filter(job__batch=batch))),
    }
    assert kept == progress_of([batch.pk])[batch.pk].as_json()  # what its jobs say
    listed = _listed(owner, created["id"])
    detail = get_batch(owner, created["id"])  # computed from the jobs
    assert _figures(listed) == _figures(detail)
    assert listed["progress"]["succeeded"] == 2 and listed["progress"]["images_made"] == 3
    assert Decimal(listed["actual_cost"]) > 0
    with CaptureQueriesContext(connection) as queries:
        owner.api().get(BATCHES, {"limit": 50})
    read_jobs = [q["sql"] for q in queries if 'FROM "generation_job"' in q["sql"]]
    # Only the first item's job, for the unit price; no grouping over the batch's jobs.
    assert len(read_jobs) == 1 and "GROUP BY" not in read_jobs[0]


def test_running_and_finished_batches_on_one_page_each_show_their_own_figures(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    done = submit(owner, items=[{"prompt": "a mug"}, {"prompt": "a cup"}])
    finish(done["id"])
    waiting = submit(owner, items=[{"prompt": "a jug"}])  # not polled: not finished

    page = {row["id"]: row for row in owner.api().get(BATCHES).json()["results"]}

    assert page[done["id"]]["progress"]["succeeded"] == 2
    assert page[done["id"]]["progress"]["images_made"] == 2
    assert (
        page[waiting["id"]]["progress"]["queued"] + page[waiting["id"]]["progress"]["running"] == 1
    )
    assert Batch.objects.get(pk=waiting["id"]).final_progress is None
    assert page[waiting["id"]]["progress"]["images_made"] == 0
    assert Decimal(page[waiting["id"]]["actual_cost"]) == 0
    for batch_id in (done["id"], waiting["id"]):
        assert _figures(page[batch_id]) == _figures(get_batch(owner, batch_id))


BEFORE = ("batches", "0005_batch_item_locale")
AFTER = ("batches", "0006_batch_final_progress")


def _old_batch(apps: Any, owner: Actor, status: str, jobs: list[tuple[str, int]]) -> Any:
    batch = apps.get_model("batches", "Batch").objects.create(
        tenant_id=owner.tenant.pk, status=status, total_items=len(jobs)
    )
    for index, (job_status, images) in enumerate(jobs):
        job = Job.objects.create(
            tenant=owner.tenant, prompt="p", model_prompt="p", aspect_ratio="1:1",
            status=job_status, batch_id=batch.pk, mode="batch",
        )  # fmt: skip
        BatchItem.objects.create(batch_id=batch.pk, index=index, job=job)
        for n in range(images):
            image = Image.objects.create(
                tenant=owner.tenant, job=job, index=n, file=f"t/{uuid.uuid4()}.png",
                mime_type="image/png", width=1, height=1, size_bytes=1, sha256="0" * 64,
            )  # fmt: skip
            UsageEvent.objects.create(
                tenant_id=owner.tenant.pk, job_id=job.pk, image_id=image.pk, tier="lite",
                model="m", mode="batch", provider_cost=Decimal("0.0168"),
                markup=Decimal("0.01"), billed=Decimal("0.026800001"),
            )  # fmt: skip
    return batch


@pytest.mark.django_db(transaction=True)
def test_the_migration_writes_the_figures_of_batches_already_finished(owner: Actor) -> None:
    apps = migrate_to(BEFORE)
    try:
        done = _old_batch(apps, owner, "succeeded", [("succeeded", 2), ("failed", 0)])
        empty = _old_batch(apps, owner, "canceled", [("canceled", 0)])
        running = _old_batch(apps, owner, "running", [("succeeded", 1), ("running", 0)])

        migrate_to(AFTER)

        kept = dict(Batch.objects.values_list("pk", "final_progress"))
        assert kept[done.pk] == {
            "counts": {"succeeded": 1, "failed": 1},
            "images_made": 2,
            "actual_cost": "0.053600002",
        }
        assert kept[empty.pk] == {
            "counts": {"canceled": 1},
            "images_made": None,
            "actual_cost": None,
        }
        assert kept[running.pk] is None  # it may still change: computed from its jobs
    finally:
        migrate_to_latest()
