"""A batch's progress: its items per status, the images made and what they cost so far.

Computed from its jobs while the batch runs. Once it has finished the figures cannot
change: an image is stored only for a job that has not finished (`ingest._move_share`),
nothing puts a finished job back in the queue (requeues, deferrals and hand-backs take
running jobs only; a retry makes a new batch), and the usage events are written with their
images. So `batch_settle` writes them on the batch as it finishes (`Batch.final_progress`),
and a list of finished batches reads them there: O(page) however many items each has
(a page of 50 batches of 100 items read 5,000 jobs with their images and usage events).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, IntegerField, Model, OuterRef, Subquery, Sum

from config.sql import without_jit
from generation.selectors import job_actual_cost

NANO = Decimal("1e-9")


@dataclass
class Progress:
    counts: dict[str, int] = field(default_factory=dict)  # status → items
    images_made: int | None = None  # None: no item has an image yet
    actual_cost: Decimal | None = None  # None: no usage yet

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "images_made": self.images_made,
            # In nano-dollars, as the ledger keeps it (SQLite's sums carry more places).
            "actual_cost": None
            if self.actual_cost is None
            else str(self.actual_cost.quantize(NANO)),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        cost = data.get("actual_cost")
        return cls(
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            images_made=data.get("images_made"),
            actual_cost=None if cost is None else Decimal(cost),
        )


def progress_of(
    batch_ids: Iterable[Any],
    *,
    job_model: type[Model] | None = None,
    image_model: type[Model] | None = None,
    usage_model: type[Model] | None = None,
) -> dict[Any, Progress]:
    """The batches' progress from their jobs, in one query whatever their number: one pass
    over their jobs grouped by batch and status, each job's images and cost a subquery by
    its id (three grouped queries each read the jobs once; subqueries per batch read each
    batch's jobs once per figure). The models: a migration's historical ones, else the
    app's."""
    if job_model is None or image_model is None or usage_model is None:
        from billing.models import UsageEvent
        from generation.models import Image, Job

        job_model, image_model, usage_model = Job, Image, UsageEvent
    ids = list(batch_ids)
    out = {pk: Progress() for pk in ids}
    if not ids:
        return out
    # COUNT(job_id), not COUNT(id): the job_id index alone answers it (an index-only
    # scan), without visiting each image's row.
    images = (
        image_model._default_manager.filter(job_id=OuterRef("pk"))
        .order_by()
        .values("job_id")
        .annotate(n=Count("job_id"))
        .values("n")
    )
    rows = (
        job_model._default_manager.filter(batch_id__in=ids)
        .order_by()
        .alias(job_images=Subquery(images, output_field=IntegerField()))
        .alias(job_cost=job_actual_cost(usage_model))
        .values("batch_id", "status")
        .annotate(n=Count("pk"), made=Sum("job_images"), cost=Sum("job_cost"))
    )
    # Thousands of jobs with two subplans each pass the planner's JIT threshold: at 10M
    # rows the query ran in a few ms after 300 ms of compiling it.
    with without_jit():
        grouped = list(rows)
    for row in grouped:
        progress = out[row["batch_id"]]
        progress.counts[row["status"]] = row["n"]
        if row["made"] is not None:
            progress.images_made = (progress.images_made or 0) + row["made"]
        if row["cost"] is not None:
            progress.actual_cost = (progress.actual_cost or Decimal(0)) + row["cost"]
    return out


def final_progress_fill(
    *,
    batch_model: type[Model] | None = None,
    job_model: type[Model] | None = None,
    image_model: type[Model] | None = None,
    usage_model: type[Model] | None = None,
    chunk: int = 500,
) -> int:
    """Write `final_progress` on every finished batch that lacks it (batches finished
    before the column existed); returns how many. In chunks of `chunk` batches, one
    grouped query each."""
    if batch_model is None:
        from batches.models import Batch

        batch_model = Batch
    finished = ["succeeded", "failed", "canceled"]
    filled = 0
    last: Any = None
    while True:
        rows = batch_model._default_manager.filter(
            status__in=finished, final_progress__isnull=True
        ).order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        ids = list(rows.values_list("pk", flat=True)[:chunk])
        if not ids:
            return filled
        figures = progress_of(
            ids, job_model=job_model, image_model=image_model, usage_model=usage_model
        )
        batches = [batch_model(pk=pk, final_progress=figures[pk].as_json()) for pk in ids]
        batch_model._default_manager.bulk_update(batches, ["final_progress"])
        filled += len(ids)
        last = ids[-1]
