"""`manage.py bulk_generate`: images and results.csv from a CSV, resumable without duplicates."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from batches import bulk
from batches.models import Batch
from batches.templates import template_create
from billing.models import UsageEvent
from generation.models import Image
from tests.plugins.actors import Actor
from tests.plugins.gemini import GeminiEmulator


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(csv_path: Path, out: Path, *args: str) -> str:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "bulk_generate", "--tenant", "acme", "--csv", str(csv_path), "--out", str(out),
        "--poll-interval", "0.02", *args, stdout=stdout, stderr=stderr,
    )  # fmt: skip
    return stdout.getvalue() + stderr.getvalue()


def results(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    rows = [{"key": f"sku-{i}", "prompt": f"product mockup of mug {i}"} for i in range(6)]
    return write_csv(tmp_path / "prompts.csv", rows)


def test_bulk_generate_writes_every_image_and_a_results_csv_with_progress(
    inline_worker: GeminiEmulator, owner: Actor, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    output = run(prompts, out)

    assert "Done" in output and "6/6" in output  # the tqdm bar's last frame
    rows = results(out)
    assert [r["key"] for r in rows] == [f"sku-{i}" for i in range(6)]
    assert {r["status"] for r in rows} == {"succeeded"}
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        f"sku-{i}-0.png" for i in range(6)
    ]
    assert {e.mode for e in UsageEvent.objects.all()} == {"batch"}


def test_bulk_generate_resumes_after_leaving_early_without_submitting_again(
    inline_worker: GeminiEmulator, owner: Actor, prompts: Path, tmp_path: Path
) -> None:
    inline_worker.configure(batch_step_seconds=0.5)
    out = tmp_path / "out"

    first = run(prompts, out, "--timeout", "0")
    assert "re-run" in first
    assert {r["status"] for r in results(out)} == {"pending"}

    run(prompts, out)
    run(prompts, out)  # a third run finds nothing to do

    assert Batch.objects.count() == 1
    assert Image.objects.count() == UsageEvent.objects.count() == 6
    assert {r["status"] for r in results(out)} == {"succeeded"}


def test_bulk_generate_interrupted_while_writing_resumes_without_duplicates(
    inline_worker: GeminiEmulator,
    owner: Actor,
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    real_write = bulk._write_images
    calls = []

    def interrupted(*args: Any) -> list[str]:
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(*args)

    monkeypatch.setattr(bulk, "_write_images", interrupted)
    with pytest.raises(CommandError, match="re-run"):
        run(prompts, out)
    monkeypatch.setattr(bulk, "_write_images", real_write)

    run(prompts, out)

    assert Batch.objects.count() == 1
    assert Image.objects.count() == UsageEvent.objects.count() == 6
    assert len(list((out / "images").iterdir())) == 6
    assert {r["status"] for r in results(out)} == {"succeeded"}


def test_a_batch_submitted_just_before_a_crash_is_adopted_not_resubmitted(
    inline_worker: GeminiEmulator, owner: Actor, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run(prompts, out, "--timeout", "0")
    # As if the process died after creating the batch but before recording its id.
    state_path = out / bulk.STATE_FILE
    state = json.loads(state_path.read_text())
    state["submissions"][0]["batch_id"] = None
    state_path.write_text(json.dumps(state))

    run(prompts, out)

    assert Batch.objects.count() == 1
    assert Image.objects.count() == 6


def test_new_and_failed_rows_are_submitted_on_the_next_run_and_finished_rows_skipped(
    inline_worker: GeminiEmulator, owner: Actor, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    path = tmp_path / "p.csv"
    write_csv(path, [{"key": "a", "prompt": "a cat"}, {"key": "b", "prompt": "a dog [[fail:400]]"}])
    run(path, out)
    assert [r["status"] for r in results(out)] == ["succeeded", "failed"]

    write_csv(path, [{"key": "a", "prompt": "a cat"}, {"key": "b", "prompt": "a dog"},
                     {"key": "c", "prompt": "a cow"}])  # fmt: skip
    run(path, out)

    assert [r["status"] for r in results(out)] == ["succeeded"] * 3
    second = Batch.objects.order_by("created_at").last()
    assert second is not None and second.total_items == 2
    assert Image.objects.count() == 3


def test_bulk_generate_fills_a_template_from_the_csv_columns_in_realtime_mode(
    inline_worker: GeminiEmulator, owner: Actor, tmp_path: Path
) -> None:
    template = template_create(
        tenant=owner.tenant, name="avatar", text="avatar of a {animal} wearing {item}"
    )
    path = write_csv(
        tmp_path / "t.csv",
        [{"animal": "fox", "item": "a hat"}, {"animal": "owl", "item": "a scarf"}],
    )
    out = tmp_path / "out"

    run(path, out, "--template", str(template.pk), "--mode", "realtime")

    assert [r["key"] for r in results(out)] == ["row-1", "row-2"]
    assert {r["status"] for r in results(out)} == {"succeeded"}
    assert {e.mode for e in UsageEvent.objects.all()} == {"standard"}
    assert Batch.objects.get().template_id == template.pk


def test_bulk_generate_refuses_a_csv_with_template_variables_missing(
    owner: Actor, tmp_path: Path
) -> None:
    template = template_create(tenant=owner.tenant, name="t", text="a {animal} in {place}")
    path = write_csv(tmp_path / "t.csv", [{"animal": "fox"}])
    with pytest.raises(CommandError, match="place"):
        run(path, tmp_path / "out", "--template", str(template.pk))
    assert not Batch.objects.exists()
