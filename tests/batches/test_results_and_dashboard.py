"""Results downloads (zip with manifest, CSV) and the dashboard's batches pages."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile

from django.test import Client
from PIL import Image as PILImage

from generation.models import Image
from generation.provenance import credentials_read
from tests.batches.conftest import BATCHES, finish, submit
from tests.plugins.actors import PASSWORD, Actor
from tests.plugins.gemini import GeminiEmulator

PROMPTS = [
    {"prompt": "banner 'Hallo'", "label": "de-DE"},
    {"prompt": "banner [[fail:400]]", "label": "broken"},
    {"prompt": "banner 'Salut'", "label": "fr-FR", "count": 2},
]


def signed_in(actor: Actor) -> Client:
    client = Client()
    assert client.login(username=actor.user.username, password=PASSWORD)
    return client


def test_results_zip_holds_every_image_and_a_manifest_naming_failures(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=PROMPTS)
    finish(created["id"])

    response = owner.api().get(f"{BATCHES}/{created['id']}/results.zip")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = sorted(archive.namelist())
    assert names == [
        "images/00000-de-de-0.png",
        "images/00002-fr-fr-0.png",
        "images/00002-fr-fr-1.png",
        "manifest.csv",
    ]
    assert PILImage.open(archive.open(names[0])).size == (1024, 1024)
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [(r["item_index"], r["status"], r["error_code"]) for r in manifest] == [
        ("0", "succeeded", ""),
        ("1", "failed", "invalid_argument"),
        ("2", "succeeded", ""),
        ("2", "succeeded", ""),
    ]
    assert manifest[0]["billed"].startswith("0.0")


def test_results_csv_has_one_row_per_image_or_failed_item(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=PROMPTS)
    finish(created["id"])

    response = owner.api().get(f"{BATCHES}/{created['id']}/results.csv")

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["label"] for r in rows] == ["de-DE", "broken", "fr-FR", "fr-FR"]
    assert rows[1]["file"] == "" and rows[2]["file"] == "images/00002-fr-fr-0.png"


def test_results_keep_the_original_bytes_and_name_each_images_credentials(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, items=PROMPTS)
    finish(created["id"])
    rows = list(
        csv.DictReader(
            io.StringIO(owner.api().get(f"{BATCHES}/{created['id']}/results.csv").content.decode())
        )
    )
    assert [r["provenance"] for r in rows] == ["trusted", "", "trusted", "trusted"]

    response = owner.api().get(f"{BATCHES}/{created['id']}/results.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    for row in rows:
        if not row["file"]:
            continue
        data = archive.read(row["file"])
        image = Image.objects.get(pk=row["image_id"])
        assert hashlib.sha256(data).hexdigest() == image.sha256
        assert credentials_read(data, "image/png").state == "trusted"


def test_batches_page_shows_progress_cost_and_the_download(
    inline_worker: GeminiEmulator, owner: Actor
) -> None:
    created = submit(owner, name="Spring banners", items=PROMPTS)
    finish(created["id"])
    client = signed_in(owner)

    listing = client.get("/batches/")
    detail = client.get(f"/batches/{created['id']}/")
    download = client.get(f"{BATCHES}/{created['id']}/results.zip")

    assert listing.status_code == 200 and detail.status_code == 200
    page = listing.content.decode()
    assert "Spring banners" in page and 'aria-valuenow="100"' in page
    assert f"/api/v1/batches/{created['id']}/results.zip" in page
    text = detail.content.decode()
    assert text.count('data-testid="item-row"') == 3
    assert "invalid_argument" in text and "2 succeeded · 1 failed" in text
    assert download.status_code == 200


def test_batch_page_of_another_tenant_is_404(owner: Actor, outsider: Actor) -> None:
    created = submit(owner, mode="realtime", items=[{"prompt": "a mug"}])

    response = signed_in(outsider).get(f"/batches/{created['id']}/")

    assert response.status_code == 404
    assert "a mug" not in signed_in(outsider).get("/batches/").content.decode()


def test_batches_page_needs_a_signed_in_user(owner: Actor) -> None:
    response = Client().get("/batches/")
    assert response.status_code == 302 and "login" in response["Location"]
