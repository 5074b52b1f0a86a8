from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from billing.models import UsageEvent
from generation import images
from generation.models import Image, Job, thumbnail_upload_to
from tenants.models import QuotaPeriod
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator

GENERATIONS = "/api/v1/generations"


def _png_size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


def test_submit_and_wait_returns_a_succeeded_job_with_a_downloadable_1k_png(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    response = owner.api().post(
        GENERATIONS,
        {"prompt": "a smiling astronaut", "kind": "avatar", "metadata": {"user": "42"}},
        format="json",
        HTTP_PREFER="wait=30",
    )

    assert response.status_code == 200, response.content
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["aspect_ratio"] == "1:1"
    assert job["metadata"] == {"user": "42"}
    assert job["attempts"] == 1
    [image] = job["images"]
    assert (image["width"], image["height"]) == (1024, 1024)
    assert image["usage"]["output_image_tokens"] == 1120
    content = owner.api().get(image["download_url"])
    assert content.status_code == 200
    assert _png_size(b"".join(content.streaming_content)) == (1024, 1024)
    # Billed = provider cost from tokens + the plan's markup, and committed to the quota.
    usage = UsageEvent.objects.get(image_id=image["id"])
    assert usage.output_image_tokens == 1120
    assert usage.billed == usage.provider_cost + Decimal("0.01")
    assert Decimal(job["actual_cost"]) == usage.billed.quantize(Decimal("0.000001"))
    period = QuotaPeriod.objects.get(tenant=owner.tenant)
    assert (period.images_used, period.images_reserved, period.spend_reserved_nanos) == (1, 0, 0)


def test_submit_without_wait_answers_202_with_estimate_and_links(
    owner: Actor, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner.api().post(
            GENERATIONS, {"prompt": "summer sale", "kind": "banner", "count": 3}, format="json"
        )

    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert job["aspect_ratio"] == "16:9"
    assert job["links"]["self"] == f"{GENERATIONS}/{job['id']}"
    assert response["Location"] == job["links"]["self"]
    # 3 × (1,120 image tokens at $30/1M + prompt tokens + $0.01 markup), reserved up front
    assert Decimal("0.13") < Decimal(job["estimated_cost"]) < Decimal("0.14")
    # Enqueued only once the transaction commits (the other callback counts the submit).
    assert len(callbacks) == 2
    assert QuotaPeriod.objects.get(tenant=owner.tenant).images_reserved == 3


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({}, 400, "validation_error", "prompt"),
        ({"prompt": "x", "count": 9}, 400, "validation_error", "count"),
        ({"prompt": "x", "aspect_ratio": "2:1"}, 400, "validation_error", "aspect_ratio"),
        ({"prompt": "x", "model": "ultra"}, 400, "validation_error", "model"),
        ({"prompt": "x", "image_size": "2K"}, 400, "unsupported_image_size", "image_size"),
        ({"prompt": "x", "kind": "poster"}, 400, "validation_error", "kind"),
        ({"prompt": "x", "metadata": [1]}, 400, "validation_error", "metadata"),
        ({"prompt": "x", "metadata": {"k": "v" * 501}}, 400, "validation_error", "metadata"),
        ({"prompt": "x", "metadata": {"k": {"nested": "x"}}}, 400, "validation_error", "metadata"),
        ({"prompt": "x", "metadata": {"k" * 41: "v"}}, 400, "validation_error", "metadata"),
        (
            {"prompt": "x", "metadata": {f"k{i}": "v" * 400 for i in range(20)}},
            400,
            "invalid_request",
            "metadata",
        ),
        (
            {"prompt": "x", "input_images": ["00000000-0000-0000-0000-000000000000"]},
            400,
            "input_image_not_found",
            "input_images",
        ),
        ({"prompt": "x", "input_images": ["nope"]}, 400, "validation_error", "input_images"),
    ],
)
def test_bad_input_is_refused_with_a_field_error(
    owner: Actor, body: dict, status: int, code: str, field: str
) -> None:  # type: ignore[type-arg]
    error = assert_error(owner.api().post(GENERATIONS, body, format="json"), status, code)
    assert field in error["fields"]
    assert not Job.objects.exists()


def test_pro_ratio_outside_its_ten_is_refused(owner: Actor) -> None:
    body = {"prompt": "x", "model": "pro", "aspect_ratio": "1:8"}
    assert_error(
        owner.api().post(GENERATIONS, body, format="json"), 400, "unsupported_aspect_ratio"
    )


def test_model_outside_the_plan_is_refused_with_403(owner: Actor) -> None:
    owner.tenant.plan.allowed_tiers = ["lite"]
    owner.tenant.plan.save()
    body = {"prompt": "x", "model": "pro"}
    assert_error(owner.api().post(GENERATIONS, body, format="json"), 403, "model_not_in_plan")


def test_malformed_json_is_a_400_not_a_500(owner: Actor) -> None:
    response = owner.api().generic(
        "POST", GENERATIONS, "{not json", content_type="application/json"
    )
    assert_error(response, 400, "malformed_request")


def test_over_quota_is_refused_with_402_and_nothing_is_created(owner: Actor) -> None:
    owner.tenant.plan.monthly_image_quota = 2
    owner.tenant.plan.save()
    body = {"prompt": "x", "count": 3}
    error = assert_error(owner.api().post(GENERATIONS, body, format="json"), 402, "quota_exceeded")
    assert "only 2 remain" in error["message"]
    assert not Job.objects.exists()


def test_past_due_tenant_cannot_submit(owner: Actor) -> None:
    owner.tenant.status = "past_due"
    owner.tenant.save()
    body = {"prompt": "x"}
    assert_error(owner.api().post(GENERATIONS, body, format="json"), 402, "billing_inactive")
    assert owner.api().get(GENERATIONS).status_code == 200  # reading still works


def test_read_only_key_cannot_submit(owner: Actor, actor_factory) -> None:  # type: ignore[no-untyped-def]
    reader = actor_factory(owner.tenant, "reader@acme.test", "member", scopes=["read"])
    response = reader.api().post(GENERATIONS, {"prompt": "x"}, format="json")
    assert_error(response, 403, "insufficient_scope")


def test_no_key_and_bad_key_are_refused(owner: Actor) -> None:
    from rest_framework.test import APIClient

    assert_error(
        APIClient().post(GENERATIONS, {"prompt": "x"}, format="json"), 401, "not_authenticated"
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer bk_live_000000000000_x")
    assert_error(client.get(GENERATIONS), 401, "invalid_api_key")


def test_same_idempotency_key_replays_and_a_different_body_conflicts(
    owner: Actor, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    api = owner.api()
    with django_capture_on_commit_callbacks(execute=False):
        first = api.post(GENERATIONS, {"prompt": "cat"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        again = api.post(GENERATIONS, {"prompt": "cat"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        other = api.post(GENERATIONS, {"prompt": "dog"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert_error(other, 409, "idempotency_key_reused")
    assert Job.objects.count() == 1


def test_idempotency_keys_are_per_tenant(
    owner: Actor, outsider: Actor, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=False):
        a = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
        b = outsider.api().post(
            GENERATIONS, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
    assert a.json()["id"] != b.json()["id"]


def test_a_failed_submit_does_not_burn_the_idempotency_key(owner: Actor) -> None:
    owner.tenant.plan.monthly_image_quota = 0
    owner.tenant.plan.save()
    api = owner.api()
    first = api.post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert_error(first, 402, "quota_exceeded")
    owner.tenant.plan.monthly_image_quota = 10
    owner.tenant.plan.save()
    retry = api.post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert retry.status_code == 202


def test_list_is_newest_first_with_cursor_pagination_and_filters(
    owner: Actor, outsider: Actor, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    api = owner.api()
    with django_capture_on_commit_callbacks(execute=False):
        ids = [
            api.post(
                GENERATIONS,
                {
                    "prompt": f"p{i}",
                    "kind": "avatar" if i % 2 else "banner",
                    "metadata": {"batch": "b1" if i < 3 else "b2"},
                },
                format="json",
            ).json()["id"]
            for i in range(5)
        ]
        outsider.api().post(GENERATIONS, {"prompt": "theirs"}, format="json")

    page1 = api.get(GENERATIONS, {"limit": 2}).json()
    page2 = api.get(page1["next"]).json()
    assert [j["id"] for j in page1["results"]] == ids[::-1][:2]
    assert [j["id"] for j in page2["results"]] == ids[::-1][2:4]
    avatars = api.get(GENERATIONS, {"kind": "avatar"}).json()["results"]
    assert {j["id"] for j in avatars} == {ids[1], ids[3]}
    tagged = api.get(GENERATIONS, {"metadata": "batch:b1"}).json()["results"]
    assert {j["id"] for j in tagged} == set(ids[:3])
    assert api.get(GENERATIONS, {"status": "succeeded"}).json()["results"] == []
    assert_error(api.get(GENERATIONS, {"created_after": "yesterday"}), 400, "validation_error")


@pytest.mark.parametrize(
    ("name", "value", "found"),
    [
        # An offset PostgreSQL refuses (beyond ±15:59; schemathesis found it as a 500).
        ("created_before", "0193-11-01T09:45:22-17:52", 0),
        ("created_after", "0193-11-01T09:45:22-17:52", 1),
        ("created_after", "2000-01-01T23:30:00+23:59", 1),
        ("created_after", "0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("created_before", "2026-13-01T00:00:00Z", None),  # well formed, no such month
    ],
)
def test_a_created_filter_is_compared_in_utc_or_refused_with_a_400(
    owner: Actor, name: str, value: str, found: int | None
) -> None:
    api = owner.api()
    api.post(GENERATIONS, {"prompt": "a lamp"}, format="json")

    response = api.get(GENERATIONS, {name: value})

    if found is None:
        assert_error(response, 400, "validation_error")
    else:
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == found


def test_other_tenants_jobs_and_images_are_404(
    inline_worker: GeminiEmulator, owner: Actor, outsider: Actor
) -> None:
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    job_id = job.json()["id"]
    image_id = job.json()["images"][0]["id"]
    theirs = outsider.api()

    assert_error(theirs.get(f"{GENERATIONS}/{job_id}"), 404, "not_found")
    assert_error(theirs.post(f"{GENERATIONS}/{job_id}/cancel"), 404, "not_found")
    for path in ("", "/content", "/thumbnail"):
        assert_error(theirs.get(f"/api/v1/images/{image_id}{path}"), 404, "not_found")
    edit = theirs.post(f"/api/v1/images/{image_id}/edits", {"instruction": "x"}, format="json")
    assert_error(edit, 404, "not_found")
    assert theirs.get(GENERATIONS).json()["results"] == []
    assert_error(theirs.get(f"{GENERATIONS}/not-a-uuid"), 404, "not_found")


def test_signed_links_work_without_a_key_and_tampering_is_refused(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    from rest_framework.test import APIClient

    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    image = job.json()["images"][0]
    anonymous = APIClient()
    thumb = anonymous.get(image["thumbnail_url"])
    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/webp"
    assert anonymous.get(image["download_url"]).status_code == 200
    tampered = image["download_url"].replace("sig=", "sig=x")
    assert_error(anonymous.get(tampered), 403, "link_invalid")
    thumb_sig_on_content = image["thumbnail_url"].replace("/thumbnail?", "/content?")
    assert_error(anonymous.get(thumb_sig_on_content), 403, "link_invalid")
    assert owner.api().get(tampered).status_code == 200  # a key, when sent, is what counts
    assert_error(anonymous.get(image["url"]), 401, "not_authenticated")


def test_an_expired_signed_link_says_it_expired(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    import time_machine
    from rest_framework.test import APIClient

    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    link = job.json()["images"][0]["download_url"]
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)):
        error = assert_error(APIClient().get(link), 403, "link_expired")
    assert "expired" in error["message"]


def test_stored_image_keeps_the_model_bytes_exactly(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    import hashlib

    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    image = Image.objects.get(pk=job.json()["images"][0]["id"])
    data = image.file.read()
    assert hashlib.sha256(data).hexdigest() == image.sha256
    assert len(data) == image.size_bytes


def _thumbnail_files(image: Image) -> list[str]:
    folder = thumbnail_upload_to(image, "").rpartition("/")[0]
    return sorted(
        f for f in default_storage.listdir(folder)[1] if f.startswith(f"{image.pk}.thumb")
    )


def test_a_generated_thumbnail_is_made_on_first_request_then_served_from_storage(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    from rest_framework.test import APIClient

    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    links = job.json()["images"][0]
    image = Image.objects.get(pk=links["id"])
    assert image.thumbnail.name == ""  # the worker made none
    assert _thumbnail_files(image) == []

    first = APIClient().get(links["thumbnail_url"])
    assert first.status_code == 200
    assert first["Content-Type"] == "image/webp"
    assert first["Cache-Control"] == "private, max-age=3600"
    made = b"".join(first.streaming_content)
    with PILImage.open(io.BytesIO(made)) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) == 256
    image.refresh_from_db()
    assert image.thumbnail.name == thumbnail_upload_to(image, "")
    with default_storage.open(image.thumbnail.name) as stored:
        assert stored.read() == made

    # Served from storage, not made again: it no longer needs the original.
    default_storage.delete(image.file.name)
    second = owner.api().get(f"/api/v1/images/{image.pk}/thumbnail")
    assert second.status_code == 200
    assert b"".join(second.streaming_content) == made
    assert Image.objects.get(pk=image.pk).thumbnail.name == image.thumbnail.name
    assert _thumbnail_files(image) == [f"{image.pk}.thumb.webp"]


def test_an_uploaded_image_gets_its_thumbnail_on_first_request(owner: Actor) -> None:
    out = io.BytesIO()
    PILImage.new("RGB", (600, 300), "teal").save(out, format="PNG")
    upload = owner.api().post(
        "/api/v1/images", {"file": io.BytesIO(out.getvalue())}, format="multipart"
    )
    image = Image.objects.get(pk=upload.json()["id"])
    assert image.thumbnail.name == ""

    response = owner.api().get(f"/api/v1/images/{image.pk}/thumbnail")
    assert response.status_code == 200
    with PILImage.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (256, 128))
    assert Image.objects.get(pk=image.pk).thumbnail.name == thumbnail_upload_to(image, "")


def test_two_first_requests_for_a_thumbnail_store_one(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    image_id = job.json()["images"][0]["id"]
    # Both requests read the row before either stored a thumbnail.
    first, second = Image.objects.get(pk=image_id), Image.objects.get(pk=image_id)

    with images.image_thumbnail(first) as won:
        won_bytes = won.read()
    with images.image_thumbnail(second) as lost:  # makes one, loses the update
        lost_bytes = lost.read()

    assert lost_bytes == won_bytes
    stored = Image.objects.get(pk=image_id).thumbnail.name
    assert first.thumbnail.name == second.thumbnail.name == stored
    assert _thumbnail_files(first) == [f"{image_id}.thumb.webp"]


def test_a_thumbnail_whose_file_is_gone_is_made_again(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    url = f"/api/v1/images/{job.json()['images'][0]['id']}/thumbnail"
    assert owner.api().get(url).status_code == 200
    image = Image.objects.get(pk=job.json()["images"][0]["id"])
    default_storage.delete(image.thumbnail.name)

    again = owner.api().get(url)
    assert again.status_code == 200
    assert b"".join(again.streaming_content).startswith(b"RIFF")
    assert Image.objects.get(pk=image.pk).thumbnail.name == image.thumbnail.name
    assert default_storage.exists(image.thumbnail.name)
