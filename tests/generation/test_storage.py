"""Images, uploads, thumbnails and exports on the filesystem and on S3 (moto's server):
the same tests, the same bytes, every download through Bunch's authorisation."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from PIL import Image as PILImage

from batches.settle import batches_settle_open
from generation.models import Image
from tests.plugins.actors import Actor, assert_error
from tests.plugins.gemini import GeminiEmulator
from tests.plugins.s3 import Store

GENERATIONS = "/api/v1/generations"


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _body(response: object) -> bytes:
    return b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_a_generated_image_and_its_thumbnail_are_stored_and_served_with_their_exact_bytes(
    inline_worker: GeminiEmulator, owner: Actor, outsider: Actor, storage: Store
) -> None:
    job = owner.api().post(GENERATIONS, {"prompt": "x"}, format="json", HTTP_PREFER="wait=10")
    links = job.json()["images"][0]
    image = Image.objects.get(pk=links["id"])

    content = owner.api().get(f"/api/v1/images/{image.pk}/content")
    thumbnail = owner.api().get(f"/api/v1/images/{image.pk}/thumbnail")

    data = _body(content)
    assert content.status_code == 200 and content["Content-Type"] == "image/png"
    assert hashlib.sha256(data).hexdigest() == image.sha256 and len(data) == image.size_bytes
    assert _body(thumbnail)[:4] == b"RIFF"
    image.refresh_from_db()
    stored = {image.file.name, image.thumbnail.name}
    if storage.kind == "s3":
        assert stored <= set(storage.objects())
        assert _files_under(storage.media_root) == []
    else:
        assert {
            str(p.relative_to(storage.media_root)) for p in _files_under(storage.media_root)
        } >= stored
    assert_error(outsider.api().get(f"/api/v1/images/{image.pk}/content"), 404, "not_found")


def test_an_uploaded_image_is_kept_and_an_edit_reads_it_from_storage(
    inline_worker: GeminiEmulator, owner: Actor, storage: Store
) -> None:
    png = io.BytesIO()
    PILImage.new("RGB", (64, 48), "teal").save(png, format="PNG")
    upload = owner.api().post(
        "/api/v1/images", {"file": io.BytesIO(png.getvalue())}, format="multipart"
    )
    assert upload.status_code == 201, upload.content
    upload_id = upload.json()["id"]

    job = owner.api().post(
        GENERATIONS,
        {"prompt": "a mug like this", "input_images": [upload_id]},
        format="json",
        HTTP_PREFER="wait=10",
    )
    edit = owner.api().post(
        f"/api/v1/images/{job.json()['images'][0]['id']}/edits",
        {"instruction": "make it blue", "input_images": [upload_id]},
        format="json",
        HTTP_PREFER="wait=10",
    )

    assert job.json()["status"] == edit.json()["status"] == "succeeded", edit.content
    kept = _body(owner.api().get(f"/api/v1/images/{upload_id}/content"))
    assert kept == png.getvalue()  # byte for byte
    if storage.kind == "s3":
        assert Image.objects.get(pk=upload_id).file.name in storage.objects()
        assert _files_under(storage.media_root) == []


def test_a_batch_results_zip_holds_every_stored_image_byte_for_byte(
    inline_worker: GeminiEmulator, owner: Actor, storage: Store
) -> None:
    batch = (
        owner.api()
        .post(
            "/api/v1/batches",
            {"mode": "realtime", "items": [{"prompt": "a mug"}, {"prompt": "a cup"}]},
            format="json",
        )
        .json()
    )
    batches_settle_open()

    response = owner.api().get(f"/api/v1/batches/{batch['id']}/results.zip")

    assert response.status_code == 200, response.content
    archive = zipfile.ZipFile(io.BytesIO(_body(response)))
    pngs = [n for n in archive.namelist() if n.endswith(".png")]
    digests = {hashlib.sha256(archive.read(n)).hexdigest() for n in pngs}
    stored = set(Image.objects.filter(job__batch_id=batch["id"]).values_list("sha256", flat=True))
    assert len(pngs) == 2 and digests == stored
    if storage.kind == "s3":
        assert _files_under(storage.media_root) == []
