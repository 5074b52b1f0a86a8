"""Content Credentials (C2PA): read and verified once when an image is stored, kept per
image, shown in the API, the provenance endpoint and the dashboard; the bytes never change.

Images come from the Gemini emulator, which signs them with a test root; `inline_worker`
trusts that root, as `make run` does.
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from PIL import Image as PILImage

from generation import images
from generation.models import Image, Provenance
from generation.provenance import credentials_read
from tests.dashboard.conftest import png, signed_in
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_create

GENERATIONS = "/api/v1/generations"


def generate(actor: Actor, prompt: str, **extra: Any) -> dict[str, Any]:
    response = actor.api().post(
        GENERATIONS,
        {"prompt": prompt, "aspect_ratio": "16:9", **extra},
        format="json",
        HTTP_PREFER="wait=30",
    )
    assert response.status_code == 200, response.content
    job = response.json()
    assert job["status"] == "succeeded", job
    return dict(job["images"][0])


def download(actor: Actor, image: dict[str, Any]) -> bytes:
    response = actor.api().get(image["download_url"] + "&download=1")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def upload(actor: Actor, data: bytes) -> Any:
    return actor.api().post(
        "/api/v1/images", {"file": io.BytesIO(data)}, format="multipart"
    )  # fmt: skip


def one_byte_changed(data: bytes) -> bytes:
    """The file with one byte inside its first pixel-data (IDAT) chunk flipped."""
    at = data.index(b"IDAT") + 4 + 100
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_a_generated_image_shows_trusted_ai_generated_credentials_in_the_api(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image = generate(owner, "banner 'Summer sale'")
    provenance = image["provenance"]
    assert provenance["state"] == "trusted"
    assert provenance["ai_generated"] is True
    assert provenance["generator"].startswith("Google C2PA Core Generator Library")
    assert provenance["issuer"].startswith("Google LLC")
    assert provenance["signer"].startswith("Google Media Processing Services")
    assert [a["description"] for a in provenance["actions"]] == [
        "Created by Google Generative AI.",
        "Applied imperceptible SynthID watermark.",
    ]
    assert provenance["validation_codes"] == []
    assert provenance["checked_at"]
    # GET of the image says the same as the job did.
    again = owner.api().get(image["url"]).json()
    assert again["provenance"] == provenance


def test_the_provenance_endpoint_returns_the_full_manifest(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image = generate(owner, "banner 'Summer sale'")
    body = owner.api().get(f"/api/v1/images/{image['id']}/provenance").json()
    assert body["image_id"] == image["id"] and body["state"] == "trusted"
    active = body["manifest"]["manifests"][body["manifest"]["active_manifest"]]
    assert active["claim_generator_info"][0]["name"] == "Google C2PA Core Generator Library"
    assert active["signature_info"]["alg"] == "Es256"


def test_another_tenants_image_provenance_is_not_found(
    inline_worker: GeminiEmulator, owner: Actor, outsider: Actor
) -> None:
    image = generate(owner, "banner 'Summer sale'")
    assert_error(outsider.api().get(f"/api/v1/images/{image['id']}/provenance"), 404, "not_found")
    assert_error(owner.api().get("/api/v1/images/not-a-uuid/provenance"), 404, "not_found")


def test_without_the_emulator_root_trusted_the_image_is_valid_with_an_unrecognized_issuer(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    settings.C2PA_TRUST_ANCHORS = ""
    provenance = generate(owner, "banner 'Summer sale'")["provenance"]
    assert provenance["state"] == "valid"
    assert provenance["validation_codes"] == ["signingCredential.untrusted"]


def test_a_tampered_image_is_stored_as_invalid_with_the_data_hash_mismatch(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    provenance = generate(owner, "banner 'Summer sale' [[c2pa:tampered]]")["provenance"]
    assert provenance["state"] == "invalid"
    assert "assertion.dataHash.mismatch" in provenance["validation_codes"]


def test_an_image_without_credentials_is_stored_as_none(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    provenance = generate(owner, "banner 'Summer sale' [[c2pa:none]]")["provenance"]
    assert provenance["state"] == "none"
    assert provenance["ai_generated"] is False and provenance["actions"] == []


def test_the_download_is_byte_identical_and_still_reads_as_trusted(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image = generate(owner, "banner 'Summer sale'")
    data = download(owner, image)
    assert hashlib.sha256(data).hexdigest() == image["sha256"]
    assert credentials_read(data, "image/png").state == "trusted"


def test_one_byte_changed_reads_as_invalid_data_hash_mismatch(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    data = download(owner, generate(owner, "banner 'Summer sale'"))
    changed = one_byte_changed(data)
    assert sum(a != b for a, b in zip(data, changed, strict=True)) == 1
    found = credentials_read(changed, "image/png")
    assert found.state == "invalid"
    assert "assertion.dataHash.mismatch" in found.validation_codes


def test_an_upload_with_credentials_shows_them(inline_worker: GeminiEmulator, owner: Actor) -> None:
    data = download(owner, generate(owner, "banner 'Summer sale'"))
    response = upload(owner, data)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["source"] == "upload"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["provenance"]["state"] == "trusted"
    assert body["provenance"]["ai_generated"] is True


def test_an_upload_without_credentials_is_none_not_an_error(owner: Actor) -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        out = io.BytesIO()
        PILImage.new("RGB", (64, 48), "teal").save(out, format=fmt)
        response = upload(owner, out.getvalue())
        assert response.status_code == 201, response.content
        assert response.json()["provenance"]["state"] == "none", fmt


def test_reading_leaves_the_stored_bytes_unchanged(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image = Image.objects.get(pk=generate(owner, "banner 'Summer sale'")["id"])
    with image.file.open("rb") as fh:
        before = fh.read()
    row = images.provenance_check(image=image)
    with image.file.open("rb") as fh:
        after = fh.read()
    assert row.state == "trusted"
    assert hashlib.sha256(after).hexdigest() == hashlib.sha256(before).hexdigest() == image.sha256


def test_the_check_command_reads_images_stored_before_reading_existed(
    inline_worker: GeminiEmulator, owner: Actor, settings: Any
) -> None:
    image_id = generate(owner, "banner 'Summer sale'")["id"]
    Provenance.objects.filter(image_id=image_id).delete()
    assert owner.api().get(f"/api/v1/images/{image_id}").json()["provenance"] is None
    call_command("provenance_check")
    assert Provenance.objects.get(image_id=image_id).state == "trusted"
    # After a trust-list change, --all reads every image again.
    settings.C2PA_TRUST_ANCHORS = ""
    call_command("provenance_check", "--all")
    assert Provenance.objects.get(image_id=image_id).state == "valid"


def test_the_provenance_endpoint_reads_an_unchecked_image_on_demand(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image_id = generate(owner, "banner 'Summer sale'")["id"]
    Provenance.objects.filter(image_id=image_id).delete()
    body = owner.api().get(f"/api/v1/images/{image_id}/provenance").json()
    assert body["state"] == "trusted"
    assert Provenance.objects.filter(image_id=image_id).exists()


def test_the_image_page_shows_the_content_credentials_panel(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    client = signed_in(owner)
    trusted = generate(owner, "banner 'Summer sale'")
    page = client.get(f"/images/{trusted['id']}/").content.decode()
    assert 'data-testid="provenance" data-state="trusted"' in page
    assert "Content Credentials" in page and "AI-generated" in page
    assert "Google LLC" in page and "Google C2PA Core Generator Library" in page
    assert 'data-testid="cr-pin"' in page
    assert "tampered" not in page

    tampered = generate(owner, "banner 'Summer sale' [[c2pa:tampered]]")
    page = client.get(f"/images/{tampered['id']}/").content.decode()
    assert 'data-state="invalid"' in page
    assert "This file may have been tampered with." in page

    stripped = generate(owner, "banner 'Summer sale' [[c2pa:none]]")
    page = client.get(f"/images/{stripped['id']}/").content.decode()
    assert 'data-state="none"' in page and "No Content Credentials" in page


def test_the_gallery_filters_by_content_credentials(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    trusted = generate(owner, "banner 'Trusted one'")
    tampered = generate(owner, "banner 'Tampered one' [[c2pa:tampered]]")
    upload_id = upload(owner, png()).json()["id"]
    client = signed_in(owner)

    def shown(query: str) -> set[str]:
        page = client.get(f"/gallery/?{query}").content.decode()
        return {i for i in (trusted["id"], tampered["id"], upload_id) if f"/images/{i}/" in page}

    assert shown("provenance=invalid") == {tampered["id"]}
    assert shown("provenance=none") == {upload_id}
    assert shown("provenance=trusted") == {trusted["id"]}
    assert shown("") == {trusted["id"], tampered["id"], upload_id}


def test_reading_costs_a_few_milliseconds_per_image(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    """The cost the worker pays per stored image (docs/architecture.md has the figures for
    1.5 MB images): a small image's credentials read in well under 50 ms."""
    data = download(owner, generate(owner, "banner 'Summer sale'"))
    credentials_read(data, "image/png")
    started = time.perf_counter()
    for _ in range(10):
        credentials_read(data, "image/png")
    assert (time.perf_counter() - started) * 1000 / 10 < 50


def test_the_job_webhook_carries_each_images_credentials(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    endpoint_create(tenant=owner.tenant, url="https://example.com/hook", event_types=[])
    image = generate(owner, "banner 'Summer sale' [[c2pa:tampered]]")
    delivery = WebhookDelivery.objects.get(event_type="job.succeeded")
    [sent] = delivery.payload["data"]["job"]["images"]
    assert sent["id"] == image["id"]
    assert sent["provenance"]["state"] == "invalid"


def test_operators_see_the_credentials_in_the_admin(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image_id = generate(owner, "banner 'Summer sale' [[c2pa:tampered]]")["id"]
    operator = User.objects.create_superuser("op", "op@bunch.test", "pw-op-123456")
    client = Client()
    client.force_login(operator)
    listed = client.get("/admin/generation/image/?provenance__state=invalid").content.decode()
    assert image_id in listed
    page = client.get(f"/admin/generation/image/{image_id}/change/").content.decode()
    assert "assertion.dataHash.mismatch" in page


def test_thumbnails_are_derived_and_claim_nothing(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    image = generate(owner, "banner 'Summer sale'")
    response = owner.api().get(image["thumbnail_url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert credentials_read(b"".join(response.streaming_content), "image/webp").state == "none"
    # Making it changed nothing about the original or what was recorded for it.
    assert owner.api().get(image["url"]).json()["provenance"] == image["provenance"]
    assert hashlib.sha256(download(owner, image)).hexdigest() == image["sha256"]
