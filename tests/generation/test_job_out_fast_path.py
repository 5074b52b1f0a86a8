"""`JobOut`, `ImageOut`, `ImageUsageOut` and `ProvenanceOut` build their output directly
(a page of jobs without DRF's per-field machinery): the same output, to the byte, as
DRF's generic `to_representation` over the declared fields, for jobs in every state."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from batches.models import Batch, BatchItem
from generation import selectors
from generation.models import Image, Job, Provenance
from generation.serializers import ImageOut, ImageUsageOut, JobOut, ProvenanceOut
from tests.billing.conftest import record_usage
from tests.plugins.actors import Actor

pytestmark = pytest.mark.django_db
GENERATIONS = "/api/v1/generations"


# Subclasses take DRF's own (generic, per-field) path: the reference output.
class GenericUsageOut(ImageUsageOut):
    pass


class GenericProvenanceOut(ProvenanceOut):
    pass


class GenericImageOut(ImageOut):
    usage = GenericUsageOut(allow_null=True, read_only=True)
    provenance = GenericProvenanceOut(allow_null=True, read_only=True)


class GenericJobOut(JobOut):
    images = GenericImageOut(many=True, read_only=True)


def _image(job: Job, index: int, **fields: Any) -> Image:
    return Image.objects.create(
        tenant=job.tenant, job=job, index=index, file=f"test/{uuid.uuid4()}.png",
        mime_type="image/png", width=1024, height=768, size_bytes=12345, sha256="a" * 64,
        **fields,
    )  # fmt: skip


def _jobs_in_every_state(actor: Actor) -> None:
    tenant = actor.tenant
    now = timezone.now()
    paid = record_usage(tenant, tier="flash", n=2)[0].job  # images with usage rows
    Job.objects.filter(pk=paid.pk).update(started_at=now, finished_at=now)
    Provenance.objects.create(
        image=paid.images.first(), state="trusted", ai_generated=True, signer="Google",
        issuer="Google LLC", generator="Gemini", signed_at=now - dt.timedelta(seconds=3),
        digital_source_type="trainedAlgorithmicMedia", actions=[{"action": "c2pa.created"}],
        validation_codes=["claimSignature.validated"], manifest={"big": "x" * 100},
    )  # fmt: skip
    common = {"tenant": tenant, "model_prompt": "m", "aspect_ratio": "16:9"}
    Job.objects.create(prompt="queued", status="queued", **common)
    Job.objects.create(prompt="running", status="running", started_at=now, attempts=2, **common)
    Job.objects.create(
        prompt="failed", status="failed", error_code="provider_refused",
        error_message="The provider refused: é ✓", finished_at=now, **common,
    )  # fmt: skip
    Job.objects.create(prompt="canceled", status="canceled", cancel_requested=True, **common)
    fallback = Job.objects.create(
        prompt="served by lite", status="succeeded", tier="lite", requested_tier="flash",
        fallback_reason="slow", **common,
    )  # fmt: skip
    _image(fallback, 0, requested_tier="flash", served_tier="lite", fallback_reason="slow")
    edited = _image(fallback, 1)
    Job.objects.create(
        prompt="an edit", status="succeeded", kind="image", parent_image_id=edited.pk,
        input_image_ids=[str(edited.pk)], metadata={"order": "42", "note": ""},
        count=3, **common,
    )  # fmt: skip
    batch = Batch.objects.create(tenant=tenant, name="b", total_items=2, total_images=2)
    for index, status in enumerate(["succeeded", "queued"]):
        job = Job.objects.create(
            prompt=f"item {index}", status=status, mode="batch", batch=batch, **common
        )
        BatchItem.objects.create(batch=batch, index=index, label=f"row {index}", job=job)
    upload = Image.objects.create(
        tenant=tenant, job=None, index=None, source="upload", file="test/u.png",
        mime_type="image/jpeg", width=10, height=10, size_bytes=1, sha256="b" * 64,
    )  # fmt: skip
    assert upload.job_id is None


@pytest.fixture
def fixed_signatures() -> Any:
    # Signed links carry the second they were signed in, a queued job's estimate counts
    # from now: the same for both outputs.
    frozen = timezone.now()
    with (
        mock.patch("django.core.signing.TimestampSigner.timestamp", return_value="1abcde"),
        mock.patch("generation.scheduler.timezone.now", return_value=frozen),
    ):
        yield


def _bytes(data: Any) -> bytes:
    return JSONRenderer().render(data)


def test_a_page_of_jobs_in_every_state_is_the_generic_output_to_the_byte(
    owner: Actor, fixed_signatures: None
) -> None:
    _jobs_in_every_state(owner)
    jobs = list(selectors.job_list(owner.tenant).order_by("-created_at", "-id"))
    assert len(jobs) == 9

    fast, generic = JobOut(jobs, many=True).data, GenericJobOut(jobs, many=True).data

    assert [row["status"] for row in fast] == [row["status"] for row in generic]
    for mine, reference in zip(fast, generic, strict=True):
        assert list(mine) == list(reference)  # the same keys, in the same order
        assert mine == reference, mine["prompt"]
    assert _bytes(fast) == _bytes(generic)
    assert any(row["queue"] for row in fast)  # the corpus covers what can be null
    assert any(row["error"] for row in fast) and any(row["item_index"] == 1 for row in fast)
    images = [image for row in fast for image in row["images"]]
    assert any(i["provenance"] for i in images) and any(i["usage"] for i in images)
    assert any(i["fallback_reason"] for i in images)


def test_the_api_list_and_detail_answer_what_the_generic_serializer_gives(
    owner: Actor, fixed_signatures: None
) -> None:
    _jobs_in_every_state(owner)
    response = owner.api().get(GENERATIONS, {"limit": 200})
    assert response.status_code == 200
    jobs = list(selectors.job_list(owner.tenant).order_by("-created_at", "-id"))

    expected = json.loads(_bytes(GenericJobOut(jobs, many=True).data))

    assert response.json()["results"] == expected
    for job in jobs:
        detail = owner.api().get(f"{GENERATIONS}/{job.pk}")
        assert detail.json() == json.loads(_bytes(GenericJobOut(job).data))


def test_an_image_alone_and_its_provenance_subclass_are_unchanged(
    owner: Actor, fixed_signatures: None
) -> None:
    _jobs_in_every_state(owner)
    for image in selectors.images_for_tenant(owner.tenant):
        assert _bytes(ImageOut(image).data) == _bytes(GenericImageOut(image).data)
        response = owner.api().get(f"/api/v1/images/{image.pk}")
        assert response.status_code == 200
        body = response.json()
        reference = json.loads(_bytes(GenericImageOut(image).data))
        assert {k: body[k] for k in reference} == reference


def test_a_page_of_jobs_shares_the_requests_tenant_instead_of_joining_it(owner: Actor) -> None:
    _jobs_in_every_state(owner)
    owner.api().get(GENERATIONS)  # the first request also looks the API key up

    with CaptureQueriesContext(connection) as queries:
        assert owner.api().get(GENERATIONS, {"limit": 200}).status_code == 200

    job_query = next(q["sql"] for q in queries if 'FROM "generation_job"' in q["sql"])
    assert '"tenants_tenant"' not in job_query
    assert not [q for q in queries if '"tenants_plan"' in q["sql"]]  # nor read it apart
    assert [q for q in queries if 'FROM "tenants_tenant"' in q["sql"]] == []


def test_a_batchs_items_carry_the_generic_output_of_their_jobs(
    owner: Actor, fixed_signatures: None
) -> None:
    _jobs_in_every_state(owner)
    batch = Batch.objects.get(tenant=owner.tenant)
    items = f"/api/v1/batches/{batch.pk}/items"
    owner.api().get(items)  # the first request also looks the API key up

    with CaptureQueriesContext(connection) as two:
        response = owner.api().get(items)
    for index in range(2, 6):
        job = Job.objects.create(
            tenant=owner.tenant, prompt="more", model_prompt="m", aspect_ratio="1:1",
            mode="batch", batch=batch,
        )  # fmt: skip
        BatchItem.objects.create(batch=batch, index=index, job=job)
        _image(job, 0)
    with CaptureQueriesContext(connection) as six:
        assert len(owner.api().get(items).json()["results"]) == 6
    assert len(six) == len(two)  # no query per item

    assert response.status_code == 200
    jobs = {job.pk: job for job in selectors.job_list(owner.tenant, batch_id=batch.pk)}
    items = response.json()["results"]
    assert [item["index"] for item in items] == [0, 1]
    for item in items:
        job = jobs[uuid.UUID(item["job"]["id"])]
        assert item["job"] == json.loads(_bytes(GenericJobOut(job).data))


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/St_Johns", "Asia/Kathmandu"])
def test_times_in_an_active_time_zone_are_the_generic_output(
    owner: Actor, fixed_signatures: None, zone: str
) -> None:
    _jobs_in_every_state(owner)
    with timezone.override(zone):
        jobs = list(selectors.job_list(owner.tenant).order_by("-created_at", "-id"))
        fast, generic = JobOut(jobs, many=True).data, GenericJobOut(jobs, many=True).data

    assert _bytes(fast) == _bytes(generic)
    assert "Z" not in "".join(row["created_at"] for row in fast)  # not UTC: an offset


def test_signed_links_are_djangos_timestamp_signer_tokens_and_verify(owner: Actor) -> None:
    from django.core import signing
    from django.test import override_settings

    from generation.links import SALT, ImageLinks, LinkRefused, signature_check

    image_id = uuid.uuid4()
    with mock.patch("django.core.signing.TimestampSigner.timestamp", return_value="1abcde"):
        link = ImageLinks().signed(image_id, "content")
        reference = signing.TimestampSigner(salt=SALT).sign(f"{image_id}:content")
    assert link.endswith(f"?sig={reference}")

    token = ImageLinks().signed(image_id, "thumbnail").split("sig=")[1]
    signature_check(token, image_id, "thumbnail")  # a fresh link passes
    with pytest.raises(LinkRefused):
        signature_check(token, image_id, "content")
    # After a key rotation, links signed with the old key still verify (a fallback key),
    # and new ones are signed with the new key.
    with override_settings(SECRET_KEY="rotated-" + "k" * 50, SECRET_KEY_FALLBACKS=["old"]):
        with override_settings(SECRET_KEY="old"):
            old = ImageLinks().signed(image_id, "content").split("sig=")[1]
        signature_check(old, image_id, "content")
        new = ImageLinks().signed(image_id, "content").split("sig=")[1]
        assert new != old
        signature_check(new, image_id, "content")


def test_batch_items_are_the_generic_output_to_the_byte(
    owner: Actor, fixed_signatures: None
) -> None:
    from batches.serializers import BatchItemOut

    class GenericBatchItemOut(BatchItemOut):
        job = GenericJobOut()

    _jobs_in_every_state(owner)
    BatchItem.objects.filter(index=1).update(locale="de-DE")
    items = list(
        BatchItem.objects.filter(batch__tenant=owner.tenant)
        .select_related("job__tenant__plan")
        .order_by("index")
    )

    fast = BatchItemOut(items, many=True).data
    generic = GenericBatchItemOut(items, many=True).data

    assert _bytes(fast) == _bytes(generic)
    assert [row["locale"] for row in fast] == ["", "de-DE"]
