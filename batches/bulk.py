"""Bulk generation from a CSV file (`manage.py bulk_generate`), resumable.

A state file in the output folder (`.bulk_state.json`) remembers, per CSV row key, what
was submitted in which batch and what was written. A submission is recorded *before* the
batch is created, under a reference that the batch carries in its metadata, so a run that
dies between the two adopts the batch on the next run instead of submitting it again.
Re-running skips rows already written; rows that failed are submitted again.
"""

from __future__ import annotations

import csv
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batches import dispatch, services
from batches.models import BATCH, MAX_ITEMS, Batch, BatchItem, PromptTemplate
from batches.results import SUFFIX
from generation.models import Job
from generation.services import InvalidRequest, JobParams
from tenants.models import Tenant

STATE_FILE = ".bulk_state.json"
RESULTS_FILE = "results.csv"
KEY_COLUMNS = ("key", "id")
ITEM_COLUMNS = {"prompt", "kind", "aspect_ratio", "count", "model", "label"}
RESULT_COLUMNS = ["key", "status", "files", "error_code", "error_message", "batch_id", "job_id"]


@dataclass
class Progress:
    done: int
    total: int
    running: int = 0


def read_rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(key, columns) per CSV row: the `key`/`id` column, else `row-<n>`."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    out: list[tuple[str, dict[str, str]]] = []
    for n, row in enumerate(rows, 1):
        key = next((row[c] for c in KEY_COLUMNS if row.get(c)), f"row-{n}")
        out.append((key, {k: (v or "") for k, v in row.items() if k and k not in KEY_COLUMNS}))
    keys = [k for k, _ in out]
    if len(set(keys)) != len(keys):
        raise InvalidRequest("The CSV's key column repeats a key; keys must be unique.")
    return out


class State:
    def __init__(self, folder: Path) -> None:
        self.path = folder / STATE_FILE
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.run_id: str = data.get("run_id") or uuid.uuid4().hex
        self.rows: dict[str, dict[str, Any]] = data.get("rows", {})
        self.submissions: list[dict[str, Any]] = data.get("submissions", [])

    def save(self) -> None:
        """Atomically: a crash leaves the previous state or the new one, never half."""
        data = {"run_id": self.run_id, "rows": self.rows, "submissions": self.submissions}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def in_flight(self) -> set[str]:
        return {k for s in self.submissions if not s.get("collected") for k in s["rows"]}

    def succeeded(self) -> int:
        return sum(1 for r in self.rows.values() if r["status"] == Job.Status.SUCCEEDED)


def _items(
    rows: list[tuple[str, dict[str, str]]], template: PromptTemplate | None, defaults: JobParams
) -> list[services.ItemSpec]:
    if template is not None:
        variables = [{k: v for k, v in row.items() if k != "label"} for _, row in rows]
        return services.items_from_template(
            template=template,
            rows=variables,
            kind=defaults.kind if defaults.kind != "image" else None,
            aspect_ratio=defaults.aspect_ratio,
            count=defaults.count,
            tier=defaults.tier,
        )
    specs = []
    for i, (key, row) in enumerate(rows):
        if not row.get("prompt", "").strip():
            raise InvalidRequest(f"Row {key!r} has no prompt (CSV line {i + 2}).")
        params = JobParams(
            prompt=row["prompt"],
            kind=row.get("kind") or defaults.kind,
            aspect_ratio=row.get("aspect_ratio") or defaults.aspect_ratio,
            count=int(row.get("count") or defaults.count),
            tier=row.get("model") or defaults.tier,
            metadata={"bulk_key": key},
        )
        specs.append(services.ItemSpec(params=params, label=row.get("label") or key))
    return specs


def _adopt(tenant: Tenant, state: State) -> None:
    """Submissions recorded without a batch id: find the batch, or forget the submission."""
    for submission in list(state.submissions):
        if submission.get("batch_id"):
            continue
        found = Batch.objects.filter(tenant=tenant, metadata__bulk_ref=submission["ref"]).first()
        if found is not None:
            submission["batch_id"] = str(found.pk)
        else:
            state.submissions.remove(submission)
    state.save()


def _submit(
    tenant: Tenant,
    state: State,
    rows: list[tuple[str, dict[str, str]]],
    template: PromptTemplate | None,
    mode: str,
    defaults: JobParams,
    name: str,
) -> None:
    items = _items(rows, template, defaults)  # validate before recording anything
    ref = f"{state.run_id}:{len(state.submissions)}"
    submission: dict[str, Any] = {"ref": ref, "batch_id": None, "rows": [k for k, _ in rows]}
    state.submissions.append(submission)
    state.save()
    batch = services.batch_submit(
        tenant=tenant,
        items=items,
        mode=mode,
        name=name,
        template=template,
        metadata={"bulk_ref": ref},
    )
    submission["batch_id"] = str(batch.pk)
    state.save()


def _write_images(folder: Path, key: str, job: Job) -> list[str]:
    names = []
    for image in job.images.order_by("index"):
        name = f"images/{key}-{image.index}.{SUFFIX.get(image.mime_type, 'bin')}"
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with image.file.open("rb") as source:
            target.write_bytes(source.read())
        names.append(name)
    return names


def _collect(folder: Path, state: State, submission: dict[str, Any]) -> int:
    """Write the finished items of one submission; returns how many rows were recorded."""
    keys = submission["rows"]
    recorded = 0
    items = BatchItem.objects.filter(
        batch_id=submission["batch_id"], job__status__in=Job.FINISHED
    ).select_related("job")
    for item in items:
        key = keys[item.index]
        if state.rows.get(key, {}).get("job_id") == str(item.job_id):
            continue
        job = item.job
        files = _write_images(folder, key, job) if job.status == Job.Status.SUCCEEDED else []
        state.rows[key] = {
            "status": job.status,
            "files": files,
            "error_code": job.error_code,
            "error_message": job.error_message,
            "batch_id": submission["batch_id"],
            "job_id": str(job.pk),
        }
        state.save()
        recorded += 1
    return recorded


def _wait(
    folder: Path,
    state: State,
    on_progress: Callable[[Progress], None],
    total: int,
    poll_interval: float,
    timeout: float | None,
) -> bool:
    """Drive and collect open submissions until done (True) or `timeout` s pass (False)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        open_submissions = [s for s in state.submissions if not s.get("collected")]
        running = 0
        for submission in open_submissions:
            batch = Batch.objects.get(pk=submission["batch_id"])
            # Idempotent with the scheduled poll: safe while the worker runs too.
            batch = dispatch.poll_for_batch(batch=batch)
            _collect(folder, state, submission)
            if batch.is_finished:
                submission["collected"] = True
                state.save()
            else:
                running += 1
        on_progress(Progress(done=state.succeeded(), total=total, running=running))
        if not running:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(poll_interval)


def write_results(folder: Path, rows: list[tuple[str, dict[str, str]]], state: State) -> Path:
    path = folder / RESULTS_FILE
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        for key, _ in rows:
            row = state.rows.get(key, {"status": "pending"})
            writer.writerow({"key": key, **row, "files": " ".join(row.get("files", []))})
    return path


def run(
    *,
    tenant: Tenant,
    csv_path: Path,
    out_dir: Path,
    mode: str = BATCH,
    template: PromptTemplate | None = None,
    defaults: JobParams | None = None,
    poll_interval: float = 5.0,
    timeout: float | None = None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> tuple[bool, Path]:
    """Submit the rows not yet done, wait for them, write images and results.csv.

    Returns (finished, results path); `finished` is False when `timeout` ran out first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = read_rows(csv_path)
    state = State(out_dir)
    _adopt(tenant, state)
    busy = state.in_flight()
    todo = [
        (key, row)
        for key, row in rows
        if key not in busy and state.rows.get(key, {}).get("status") != Job.Status.SUCCEEDED
    ]
    on_progress(Progress(done=state.succeeded(), total=len(rows)))
    for part in chunks(todo, MAX_ITEMS):
        _submit(
            tenant,
            state,
            part,
            template,
            mode,
            defaults or JobParams(prompt=""),
            name=f"bulk_generate {csv_path.name}",
        )
    finished = _wait(out_dir, state, on_progress, len(rows), poll_interval, timeout)
    return finished, write_results(out_dir, rows, state)


def chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
