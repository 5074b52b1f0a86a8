"""Series through a real django-q2 cluster in another process: frame order and inputs,
cancel mid-series, and another tenant's jobs running while a series waits."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import UsageEvent
from generation.models import Image, Job
from series.models import Series
from tests.plugins.actors import Actor
from tests.plugins.cluster import Cluster, wait_until
from tests.plugins.gemini import GeminiEmulator
from tests.series.conftest import SERIES, emulator_calls, frames, get_series, submit, upload

pytestmark = pytest.mark.cluster


def _finished(series_id: str) -> Callable[[], bool]:
    return lambda: Series.objects.get(pk=series_id).is_finished


def _frame_jobs(series_id: str) -> list[Job]:
    return list(
        Job.objects.filter(frame_version__frame__series_id=series_id).order_by(
            "frame_version__frame__index", "frame_version__number"
        )
    )


def test_a_six_frame_chained_series_calls_in_frame_order_with_references_then_previous(
    cluster_factory: Callable[..., Cluster], owner: Actor, gemini: GeminiEmulator
) -> None:
    refs = [upload(owner, (220, 120, 20)), upload(owner, (20, 120, 220))]
    cluster_factory()
    body = submit(owner, consistency="both", references=[r["id"] for r in refs], frames=frames(6))
    wait_until(_finished(body["id"]), 120, "the series to finish")

    done = get_series(owner, body["id"])
    assert done["status"] == "succeeded"
    calls = [c for c in emulator_calls(gemini) if "the fox in scene" in c["prompt"]]
    calls.sort(key=lambda c: c["at"])
    assert [c["prompt"][-1] for c in calls] == ["0", "1", "2", "3", "4", "5"]
    made = [f["image"]["sha256"] for f in done["frames"]]
    expected = [[r["sha256"] for r in refs]] + [
        [refs[0]["sha256"], refs[1]["sha256"], made[k - 1]] for k in range(1, 6)
    ]
    assert [c["inputs"] for c in calls] == expected
    # Each frame's job was created only after the frame before it had finished.
    jobs = _frame_jobs(body["id"])
    for before, after in itertools.pairwise(jobs):
        assert before.finished_at is not None and after.created_at >= before.finished_at
    assert Image.objects.filter(job__in=jobs).count() == UsageEvent.objects.count() == 6


def test_cancel_mid_series_bills_only_the_frames_made(
    cluster_factory: Callable[..., Cluster], owner: Actor, gemini: GeminiEmulator
) -> None:
    gemini.configure(latency=0.5, jitter=0)
    cluster_factory()
    body = submit(owner, consistency="chain", frames=frames(6))
    wait_until(
        lambda: Job.objects.filter(
            frame_version__frame__series_id=body["id"], status="succeeded"
        ).count() >= 2,
        60,
        "two frames made",
    )  # fmt: skip
    answer = owner.api().post(f"{SERIES}/{body['id']}/cancel")
    assert answer.status_code in (200, 202)
    wait_until(_finished(body["id"]), 60, "the series to stop")

    done = get_series(owner, body["id"])
    made = [f for f in done["frames"] if f["status"] == "succeeded"]
    assert done["status"] == "canceled" and 2 <= len(made) <= 3
    assert [f["status"] for f in done["frames"][len(made) :]] == ["canceled"] * (6 - len(made))
    jobs = _frame_jobs(body["id"])
    assert len(jobs) <= len(made) + 1  # no frame after the one running was ever started
    usage = UsageEvent.objects.filter(job__in=jobs)
    assert usage.count() == len(made)
    assert Decimal(done["billed"]) == usage.aggregate(total=Sum("billed"))["total"]


def test_another_tenants_jobs_start_while_a_series_waits_between_frames(
    cluster_factory: Callable[..., Cluster], owner: Actor, outsider: Actor, gemini: GeminiEmulator
) -> None:
    gemini.configure(latency=0.6, jitter=0)
    cluster_factory()
    body = submit(owner, consistency="chain", frames=frames(5))
    series_jobs = lambda: _frame_jobs(body["id"])  # noqa: E731
    wait_until(lambda: any(j.status == "running" for j in series_jobs()), 60, "frame 0 running")
    running = len(series_jobs()) - 1
    theirs = [
        outsider.api().post("/api/v1/generations", {"prompt": f"globex {n}"}, format="json")
        for n in range(3)
    ]
    assert {r.status_code for r in theirs} == {202}
    wait_until(_finished(body["id"]), 120, "the series to finish")
    wait_until(lambda: not Job.objects.exclude(status__in=Job.FINISHED).exists(), 60, "every job")

    jobs = series_jobs()
    other = Job.objects.filter(tenant=outsider.tenant)
    assert {j.status for j in jobs} | {j.status for j in other} == {"succeeded"}
    # Start order: all of Globex's jobs started before the series' next frame did, and
    # none waited for the series to end.
    next_frame = jobs[running + 1]
    assert next_frame.started_at is not None
    assert all(j.started_at is not None and j.started_at < next_frame.started_at for j in other)
    assert all(j.started_at < jobs[-1].started_at for j in other)
