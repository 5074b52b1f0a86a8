"""The job pipeline against the Gemini emulator, with tasks run inline."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image as PILImage

from billing.models import Price, UsageEvent
from billing.pricing import registry_prices
from core.catalog import MODELS
from core.money import token_cost
from generation import ingest, runner, scheduler
from generation.models import Image, Job
from generation.services import JobParams, job_submit
from tenants.models import QuotaPeriod
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator

GENERATIONS = "/api/v1/generations"


def _submit(actor: Actor, **body: Any) -> dict[str, Any]:
    response = actor.api().post(GENERATIONS, body, format="json", HTTP_PREFER="wait=20")
    assert response.status_code in (200, 202), response.content
    return dict(response.json())


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


def _quota(actor: Actor) -> QuotaPeriod:
    return QuotaPeriod.objects.get(tenant=actor.tenant)


def test_multi_image_job_stores_every_image_at_the_ratio_size_and_bills_each_once(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="a ceramic mug", kind="mockup", count=4)

    assert job["status"] == "succeeded"
    assert sorted(i["index"] for i in job["images"]) == [0, 1, 2, 3]
    assert {(i["width"], i["height"]) for i in job["images"]} == {(1200, 896)}
    assert UsageEvent.objects.filter(job_id=job["id"]).count() == 4
    assert _quota(owner).images_used == 4


@pytest.mark.parametrize(
    ("ratio", "size"), [("9:16", (768, 1376)), ("21:9", (1584, 672)), ("1:8", (384, 3072))]
)
def test_requested_ratio_gives_the_exact_1k_pixel_size(
    inline_worker: GeminiEmulator, owner: Actor, ratio: str, size: tuple[int, int]
) -> None:
    job = _submit(owner, prompt="a lighthouse", aspect_ratio=ratio)
    assert (job["images"][0]["width"], job["images"][0]["height"]) == size


def test_rate_limited_then_success_succeeds_without_spending_attempts_on_the_429s(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="a fox [[fail:429x2]]")

    assert job["status"] == "succeeded"
    assert job["attempts"] == 1
    assert Job.objects.get(pk=job["id"]).deferrals == 2
    assert UsageEvent.objects.filter(job_id=job["id"]).count() == 1


def test_server_errors_and_timeouts_are_retried(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    unavailable = _submit(owner, prompt="a bear [[fail:503x1]]")
    slow = _submit(owner, prompt="a hare [[slow:3]]", count=1)

    assert unavailable["status"] == "succeeded"
    assert unavailable["attempts"] == 2
    # Every call of this prompt outlasts the 2 s client timeout: retried, then given up.
    assert slow["status"] == "failed"
    assert slow["error"]["code"] == "provider_timeout"
    assert slow["attempts"] == 4


def test_safety_refusal_fails_the_job_bills_nothing_and_releases_the_reservation(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="something [[safety]]", count=2)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "image_refused"
    assert job["error"]["message"]
    assert job["images"] == []
    assert not UsageEvent.objects.exists()
    quota = _quota(owner)
    assert (quota.images_used, quota.images_reserved, quota.spend_reserved_nanos) == (0, 0, 0)


@pytest.mark.parametrize(
    ("trigger", "code"), [("[[block]]", "prompt_blocked"), ("[[noimage]]", "no_image")]
)
def test_permanent_provider_outcomes_fail_with_their_code(
    inline_worker: GeminiEmulator, owner: Actor, trigger: str, code: str
) -> None:
    job = _submit(owner, prompt=f"x {trigger}")
    assert (job["status"], job["error"]["code"], job["attempts"]) == ("failed", code, 1)


def test_retries_give_up_after_the_configured_attempts(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    settings.BUNCH_PROVIDER_MAX_ATTEMPTS = 2
    job = _submit(owner, prompt="always down [[fail:503x9]]")
    assert (job["status"], job["error"]["code"], job["attempts"]) == (
        "failed",
        "provider_unavailable",
        2,
    )
    assert _quota(owner).images_reserved == 0


def test_a_job_rate_limited_too_often_fails_as_rate_limited(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    settings.BUNCH_PROVIDER_MAX_DEFERRALS = 2
    job = _submit(owner, prompt="always busy [[fail:429x9]]")
    assert (job["status"], job["error"]["code"], job["attempts"]) == ("failed", "rate_limited", 0)
    assert _quota(owner).images_reserved == 0


def test_cancel_of_a_queued_job_releases_everything_and_is_final(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        job = owner.api().post(GENERATIONS, {"prompt": "x", "count": 2}, format="json").json()
        canceled = owner.api().post(f"{GENERATIONS}/{job['id']}/cancel")
        again = owner.api().post(f"{GENERATIONS}/{job['id']}/cancel")

    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert_error(again, 409, "job_not_cancelable")
    assert _quota(owner).images_reserved == 0


def test_cancel_mid_job_keeps_and_bills_the_images_already_made(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One call at a time; the cancel arrives after the second image is stored."""
    settings.BUNCH_CALLS_PER_TASK = 1
    original = ingest.image_store

    def store_then_cancel(*, job: Job, image: Any, result: Any, **finish: Any) -> bool:
        stored = original(job=job, image=image, result=result, **finish)
        if Image.objects.filter(job=job).count() == 2:  # this was the second image
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        return stored

    monkeypatch.setattr(ingest, "image_store", store_then_cancel)
    job = _submit(owner, prompt="a series", count=5)

    assert job["status"] == "canceled"
    assert len(job["images"]) == 2
    assert UsageEvent.objects.filter(job_id=job["id"]).count() == 2
    quota = _quota(owner)
    assert (quota.images_used, quota.images_reserved) == (2, 0)


def test_upload_then_edit_makes_a_derived_next_version(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    red = _png((220, 20, 20), (512, 512))
    upload = owner.api().post("/api/v1/images", {"file": io.BytesIO(red)}, format="multipart")
    assert upload.status_code == 201, upload.content
    source_id = upload.json()["id"]

    v1 = _submit(owner, prompt="make it a poster", input_images=[source_id])
    v1_image = v1["images"][0]
    edit = owner.api().post(
        f"/api/v1/images/{v1_image['id']}/edits",
        {"instruction": "add a blue frame"},
        format="json",
        HTTP_PREFER="wait=20",
    )
    v2 = edit.json()

    assert edit.status_code == 200
    assert v2["status"] == "succeeded"
    assert v2["parent_image_id"] == v1_image["id"]
    v2_image = Image.objects.get(pk=v2["images"][0]["id"])
    assert str(v2_image.parent_id) == v1_image["id"]
    # The edit saw the input bytes: the result is dominated by the uploaded red.
    with PILImage.open(v2_image.file) as img:
        r, g, b = img.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert r > g + 60 and r > b + 60
    versions = owner.api().get(f"/api/v1/images/{v1_image['id']}").json()["versions"]
    assert versions == [v1_image["id"], str(v2_image.pk)]
    usage = UsageEvent.objects.get(image=v2_image)
    assert usage.input_image_tokens == 1120


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"not an image at all", "invalid_image"),
        (_png((1, 2, 3), fmt="GIF"), "unsupported_image_type"),
        (_png((1, 2, 3), (4100, 10)), "image_dimensions_too_large"),
        (b"\x89PNG" + b"\0" * (7 * 1024 * 1024), "image_too_large"),
    ],
)
def test_bad_uploads_are_refused_with_a_clear_code(owner: Actor, payload: bytes, code: str) -> None:
    response = owner.api().post("/api/v1/images", {"file": io.BytesIO(payload)}, format="multipart")
    assert_error(response, 400, code)
    assert not Image.objects.exists()


def test_upload_without_a_file_is_a_field_error(owner: Actor) -> None:
    error = assert_error(
        owner.api().post("/api/v1/images", {}, format="multipart"), 400, "validation_error"
    )
    assert "file" in error["fields"]


def test_another_tenants_upload_cannot_be_used_as_input(owner: Actor, outsider: Actor) -> None:
    upload = outsider.api().post(
        "/api/v1/images", {"file": io.BytesIO(_png((0, 0, 0)))}, format="multipart"
    )
    body = {"prompt": "x", "input_images": [upload.json()["id"]]}
    assert_error(owner.api().post(GENERATIONS, body, format="json"), 400, "input_image_not_found")


def test_more_than_fourteen_input_images_is_refused(owner: Actor) -> None:
    ids = [str(uuid.uuid4()) for _ in range(15)]
    response = owner.api().post(GENERATIONS, {"prompt": "x", "input_images": ids}, format="json")
    assert "input_images" in assert_error(response, 400, "validation_error")["fields"]


def test_a_tenant_never_runs_more_jobs_than_its_plan_allows(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    owner.tenant.plan.max_concurrent_jobs = 2
    owner.tenant.plan.save()
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(5):
            job_submit(tenant=owner.tenant, params=JobParams(prompt="x"))

    first = runner.claim_jobs(limit=10)
    second = runner.claim_jobs(limit=10)

    assert len(first) == 2
    assert second == []
    assert Job.objects.filter(status="running").count() == 2
    assert Job.objects.filter(status="queued").count() == 3


def test_a_loop_takes_backlog_jobs_only_once_they_have_waited_past_every_loops_look(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    import datetime as dt

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(6):
            job_submit(tenant=owner.tenant, params=JobParams(prompt="x"))
    now = timezone.now()

    # Fresh jobs: only the free calls are filled; the rest stay for a loop with calls free.
    assert len(runner.claim_jobs(limit=1, backlog=4, now=now)) == 1
    assert len(runner.claim_jobs(limit=0, backlog=4, now=now)) == 0

    # Passed over for longer than BACKLOG_AFTER_S: nobody has a free call, so take them.
    later = now + dt.timedelta(seconds=scheduler.BACKLOG_AFTER_S + 0.1)
    assert len(runner.claim_jobs(limit=1, backlog=3, now=later)) == 4
    assert Job.objects.filter(status="queued").count() == 1


def test_expired_leases_are_requeued_and_live_ones_are_not(
    owner: Actor, django_capture_on_commit_callbacks: Any
) -> None:
    import datetime as dt

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(2):
            job_submit(tenant=owner.tenant, params=JobParams(prompt="x"))
    claimed = runner.claim_jobs(limit=2)
    Job.objects.filter(pk=claimed[0]).update(lease_expires_at=timezone.now() - dt.timedelta(1))

    assert runner.requeue_expired() == [claimed[0]]
    assert Job.objects.get(pk=claimed[0]).status == "queued"
    assert Job.objects.get(pk=claimed[1]).status == "running"


def test_a_redelivered_task_stores_and_bills_nothing_twice(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = _submit(owner, prompt="x", count=2)
    Job.objects.filter(pk=job["id"]).update(status="queued")  # as if the doorbell rang again

    runner.run_jobs(job["id"])

    assert Image.objects.filter(job_id=job["id"]).count() == 2
    assert UsageEvent.objects.filter(job_id=job["id"]).count() == 2
    assert _quota(owner).images_used == 2


@pytest.mark.parametrize("change", ["raised", "removed"])
def test_an_image_is_billed_at_the_price_book_as_it_is_when_stored(
    inline_worker: GeminiEmulator, owner: Actor, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """The price line changes (or is removed, and seeded again from the registry) after
    the job's estimate and the model's answer, just before the store reads it."""
    model = MODELS["lite"].model_id
    registry = registry_prices(tier="lite", mode="standard")["image_output_per_million"]
    original = ingest.image_store

    def change_then_store(**store: Any) -> bool:
        line = Price.objects.filter(model=model, mode="standard")
        if change == "raised":
            line.update(image_output_per_million=Decimal("99"))
        else:
            line.delete()
        return original(**store)

    monkeypatch.setattr(ingest, "image_store", change_then_store)
    job = _submit(owner, prompt="a lighthouse", model="lite")

    assert job["status"] == "succeeded"
    usage = UsageEvent.objects.get(job_id=job["id"])
    expected = Decimal("99") if change == "raised" else Decimal(registry)
    assert usage.image_output_per_million == expected
    assert usage.provider_cost >= token_cost(usage.output_image_tokens, expected) > 0
